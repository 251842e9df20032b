//! Platform time for `timing/current_time` and `timing/timing_caps`.

use api_specs::common::TimeStamp;
use api_specs::mp1::app_support::{
    CurrentTime, NtpServers, PtpMasters, TimeSourceStatus, TimingCaps,
};
use serde::{Deserialize, Serialize};

/// The time sources the platform advertises.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimingConfig {
    /// Whether the host clock is locked to UTC (e.g. chrony synchronised to a stratum source).
    pub time_source_status: TimeSourceStatus,
    /// NTP servers applications may use.
    pub ntp_servers: Vec<NtpServers>,
    /// PTP masters applications may use.
    pub ptp_masters: Vec<PtpMasters>,
}

impl Default for TimingConfig {
    fn default() -> Self {
        Self {
            time_source_status: TimeSourceStatus::Nontraceable,
            ntp_servers: Vec::new(),
            ptp_masters: Vec::new(),
        }
    }
}

/// The timing capabilities at `now`.
pub fn caps(config: &TimingConfig, now: TimeStamp) -> TimingCaps {
    TimingCaps {
        time_stamp: now,
        ntp_servers: config.ntp_servers.clone(),
        ptp_masters: config.ptp_masters.clone(),
    }
}

/// The platform clock with nanosecond resolution.
pub fn current_time(config: &TimingConfig) -> CurrentTime {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    CurrentTime {
        seconds: u32::try_from(now.as_secs()).unwrap_or(u32::MAX),
        nano_seconds: now.subsec_nanos(),
        time_source_status: config.time_source_status,
    }
}
