#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| corestream::fuzzing::fuzz_url_sign_unique(data));
