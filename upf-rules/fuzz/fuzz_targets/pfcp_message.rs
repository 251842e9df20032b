//! Fuzzes the PFCP decoder: arbitrary datagrams decode or fail cleanly, whatever decodes keeps
//! its IEs' octets as they came, re-encodes and decodes to the same message, and every IE of
//! it, grouped ones to the last level, can be read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use upf_rules::pfcp::ie::IeIter;
use upf_rules::pfcp::message::Message;

/// The octets the IEs cover, checking that a grouped IE's IEs cover its value exactly.
fn walk(ies: IeIter<'_>) -> usize {
    ies.map(|ie| {
        if ie.is_grouped() {
            assert_eq!(walk(ie.children()), ie.bytes().len());
        }
        4 + ie.bytes().len()
    })
    .sum()
}

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = Message::decode(data) {
        assert!(data.ends_with(message.ies.as_bytes()));
        assert_eq!(walk(message.ies.iter()), message.ies.as_bytes().len());
        let again = message.encode().expect("a decoded message fits a datagram");
        assert_eq!(Message::decode(&again).as_ref(), Ok(&message));
    }
});
