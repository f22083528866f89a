#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| cpid::fuzzing::dns_query(data));
