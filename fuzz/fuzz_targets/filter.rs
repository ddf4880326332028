#![no_main]
// See scim_edge_fuzz::filter for what is checked; docs/FUZZING.md for how to run it.
libfuzzer_sys::fuzz_target!(|data: &[u8]| scim_edge_fuzz::filter(data));
