//! The data path from a stream to its players' sockets: fan-out (one encoding per format per
//! frame, shared), each player's bounded send queue, and one flush per core that writes every
//! due queue with one `sendmsg` each, merging a window of media per write.

mod fanout;
mod flush;
mod queue;
mod socket;

pub use fanout::{encode, Fanout, Player, SinkFormat};
pub use flush::{FlushCounters, FlushTicket, Flusher, Registration};
pub use queue::{wait_for_items, PlayerQueue, PushOutcome};
pub use socket::{Socket, MAX_IOVECS};
