#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| cpid::testkit::fuzzing::denial(data));
