#!/usr/bin/env python3
"""A TLS terminator for the tests: accepts TLS on 127.0.0.1:PORT with CERT and KEY (OpenSSL,
through Python's ssl module) and relays each connection's plaintext to 127.0.0.1:UPSTREAM, both
ways. Puts an RTMP server that speaks no TLS behind rtmps://, as a CDN's TLS edge would.

Usage: tls_proxy.py PORT UPSTREAM CERT KEY   (prints "listening" once it accepts)
"""
import socket
import ssl
import sys
import threading


def pump(src, dst):
    """Copies src to dst until either side ends, then closes both."""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.close()
            except OSError:
                pass


def serve(conn, context, upstream):
    try:
        tls = context.wrap_socket(conn, server_side=True)
    except (ssl.SSLError, OSError) as e:
        # A client that refuses our certificate ends here; that is what some tests want.
        print(f"tls_proxy: handshake failed: {e}", file=sys.stderr, flush=True)
        conn.close()
        return
    try:
        plain = socket.create_connection(("127.0.0.1", upstream))
    except OSError as e:
        print(f"tls_proxy: upstream: {e}", file=sys.stderr, flush=True)
        tls.close()
        return
    threading.Thread(target=pump, args=(plain, tls), daemon=True).start()
    pump(tls, plain)


def main():
    port, upstream, cert, key = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(64)
    print("listening", flush=True)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn, context, upstream), daemon=True).start()


if __name__ == "__main__":
    main()
