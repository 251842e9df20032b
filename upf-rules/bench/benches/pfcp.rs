//! The PFCP codec of `upf-rules` beside rs-pfcp on the same octets: the 2.4 KB Session
//! Establishment Request of 111 IEs the MEP sends for a video analytics instance
//! (`upf_rules_bench::establishment`). Each figure is the median over three rounds that
//! alternate the two codecs, in nanoseconds per message; the last column is how many times
//! longer rs-pfcp takes.
//!
//! `cargo bench --manifest-path upf-rules/bench/Cargo.toml`
//!
//! - encode: the message held in memory to its octets (rs-pfcp's grouped IEs hold their
//!   encoded children, as ours do, so neither walks a tree here);
//! - decode: octets to a message whose IEs can be read; ours checks every grouped IE down to
//!   the last level, rs-pfcp splits the top level (its lazy form);
//! - decode + read all: ours visits every IE of every level; rs-pfcp parses every Create PDR
//!   and Create FAR into its typed structs;
//! - compile and build: our rules to PDRs/FARs, and those to the message's IEs (no peer).

use std::hint::black_box;
use std::time::{Duration, Instant};

use rs_pfcp::ie::create_far::CreateFar;
use rs_pfcp::ie::create_pdr::CreatePdr;
use rs_pfcp::message::Message as _;
use rs_pfcp::message::session_establishment_request::SessionEstablishmentRequest;
use upf_rules::pfcp::ie::IeIter;
use upf_rules::pfcp::message::Message;
use upf_rules_bench::{count_ies, establishment, plan, rules, steering};

/// How long one measurement runs.
const RUN: Duration = Duration::from_millis(200);
/// Alternating rounds; the median is printed.
const ROUNDS: usize = 3;

/// Nanoseconds per call of `f`, over at least [`RUN`].
fn time<T>(mut f: impl FnMut() -> T) -> f64 {
    let (start, mut calls) = (Instant::now(), 0u64);
    while start.elapsed() < RUN {
        for _ in 0..64 {
            black_box(f());
        }
        calls += 64;
    }
    start.elapsed().as_nanos() as f64 / calls as f64
}

/// Reads every IE of every level, as a UPF does when it installs the rules.
fn read_all(ies: IeIter<'_>) -> u64 {
    ies.map(|ie| {
        let value = ie.bytes();
        let own = u64::from(ie.ie_type()) + value.len() as u64;
        own + if ie.is_grouped() {
            read_all(ie.children())
        } else {
            value.first().map_or(0, |b| u64::from(*b))
        }
    })
    .sum()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

type Run<'a> = Box<dyn FnMut() -> f64 + 'a>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let plan = plan()?;
    let message = establishment(&plan, 0x0102_0304_0506_0708, 42);
    let wire = message.encode()?;
    let theirs = SessionEstablishmentRequest::unmarshal(&wire)?;
    if theirs.marshal() != wire {
        return Err("rs-pfcp does not re-encode the same octets".into());
    }
    let typed = |m: &SessionEstablishmentRequest| -> Result<usize, rs_pfcp::error::PfcpError> {
        let pdrs = m
            .create_pdrs
            .iter()
            .map(|ie| CreatePdr::unmarshal(&ie.payload));
        let fars = m
            .create_fars
            .iter()
            .map(|ie| CreateFar::unmarshal(&ie.payload));
        Ok(pdrs.collect::<Result<Vec<_>, _>>()?.len() + fars.collect::<Result<Vec<_>, _>>()?.len())
    };
    if typed(&theirs)? != plan.pdrs.len() + plan.fars.len() {
        return Err("rs-pfcp parsed another number of PDRs and FARs".into());
    }
    println!(
        "Session Establishment Request: {} octets, {} IEs ({} Create PDR, {} Create FAR); median of {ROUNDS} alternating rounds, ns per message",
        wire.len(),
        count_ies(message.ies.iter()),
        plan.pdrs.len(),
        plan.fars.len(),
    );

    let (rules, steering) = (rules(), steering());
    // (name, ours, rs-pfcp's)
    let mut rows: Vec<(&str, Run<'_>, Option<Run<'_>>)> = vec![
        (
            "encode",
            Box::new(|| time(|| black_box(&message).encode())),
            Some(Box::new(|| time(|| black_box(&theirs).marshal()))),
        ),
        (
            "decode",
            Box::new(|| time(|| Message::decode(black_box(&wire)))),
            Some(Box::new(|| {
                time(|| SessionEstablishmentRequest::unmarshal(black_box(&wire)))
            })),
        ),
        (
            "decode + read all",
            Box::new(|| time(|| Message::decode(black_box(&wire)).map(|m| read_all(m.ies.iter())))),
            Some(Box::new(|| {
                time(|| SessionEstablishmentRequest::unmarshal(black_box(&wire)).map(|m| typed(&m)))
            })),
        ),
        (
            "compile 5 rules",
            Box::new(|| time(|| upf_rules::compile::compile(black_box(&rules), &steering, 1, 1))),
            None,
        ),
        (
            "build the IEs",
            Box::new(|| time(|| establishment(black_box(&plan), 1, 1))),
            None,
        ),
    ];
    let mut figures = vec![(Vec::new(), Vec::new()); rows.len()];
    for _ in 0..ROUNDS {
        for ((_, ours, theirs), (a, b)) in rows.iter_mut().zip(&mut figures) {
            a.push(ours());
            if let Some(theirs) = theirs {
                b.push(theirs());
            }
        }
    }
    println!(
        "{:<20} {:>12} {:>14} {:>10}",
        "", "upf-rules", "rs-pfcp 0.5.0", "ratio"
    );
    for ((name, ..), (a, b)) in rows.iter().zip(figures) {
        let ours = median(a);
        if b.is_empty() {
            println!("{name:<20} {ours:>12.0} {:>14} {:>10}", "-", "-");
        } else {
            let theirs = median(b);
            println!(
                "{name:<20} {ours:>12.0} {theirs:>14.0} {:>9.2}x",
                theirs / ours
            );
        }
    }
    Ok(())
}
