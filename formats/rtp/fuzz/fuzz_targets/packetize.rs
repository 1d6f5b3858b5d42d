#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rill_rtp::fuzzing::packetize(data);
});
