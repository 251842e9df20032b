//! Fuzzes the PFCP decoder: arbitrary datagrams decode or fail cleanly, and whatever decodes
//! re-encodes to the same octets.
#![no_main]

use libfuzzer_sys::fuzz_target;
use upf_rules::pfcp::message::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = Message::decode(data) {
        let again = message.encode();
        assert_eq!(Message::decode(&again).as_ref(), Ok(&message));
    }
});
