//! Who is on the other end of a connection, and whether a sender that does not introduce itself
//! (RTP before any SR + SDES CNAME, as standard GStreamer pipelines send) may stream at all.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

/// Which peers may stream without the SR + SDES CNAME handshake (`[senders] anonymous`).
///
/// No sender is authenticated yet (there is no TLS client authentication), so a CNAME proves no
/// more than a peer address does; `allow` is the default for that reason. Anonymous streams are
/// named after the peer's address and SSRC until a CNAME arrives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum AnonymousSenders {
    /// Accept RTP-first senders from any address.
    #[default]
    Allow,
    /// Accept them from loopback addresses only (a GStreamer pipeline on the worker's host).
    Loopback,
    /// Refuse them: every sender must open with SR + SDES CNAME.
    Deny,
}

impl AnonymousSenders {
    /// Whether `peer` may stream without introducing itself first.
    #[must_use]
    pub fn allows(self, peer: IpAddr) -> bool {
        match self {
            Self::Allow => true,
            Self::Loopback => peer.to_canonical().is_loopback(),
            Self::Deny => false,
        }
    }

    /// The value as spelt in the config file.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Loopback => "loopback",
            Self::Deny => "deny",
        }
    }
}

/// How a connection came about, which decides how its stream is named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A camera connected to the worker's media port.
    Accepted {
        /// Its address.
        peer: SocketAddr,
        /// Whether it may send RTP before (or without) identifying itself.
        anonymous_allowed: bool,
    },
    /// The worker connected to a configured source (a camera serving its stream, e.g. with
    /// GStreamer's `tcpserversink`); the configured name is the stream's name.
    Source {
        /// The source's name from the configuration.
        name: Arc<str>,
        /// The address connected to.
        peer: SocketAddr,
    },
}

impl Origin {
    /// The peer's address.
    #[must_use]
    pub const fn peer(&self) -> SocketAddr {
        match self {
            Self::Accepted { peer, .. } | Self::Source { peer, .. } => *peer,
        }
    }

    /// Whether RTP may arrive before the handshake.
    #[must_use]
    pub const fn accepts_rtp_first(&self) -> bool {
        match self {
            Self::Accepted {
                anonymous_allowed, ..
            } => *anonymous_allowed,
            Self::Source { .. } => true,
        }
    }

    /// The stream's name when it identified itself with `cname` in the handshake.
    #[must_use]
    pub fn name_for_cname(&self, cname: &str) -> String {
        match self {
            Self::Accepted { .. } => cname.to_owned(),
            Self::Source { name, .. } => name.to_string(),
        }
    }

    /// The stream's name when its RTP came first, from SSRC `ssrc`.
    #[must_use]
    pub fn name_for_rtp_first(&self, ssrc: u32) -> String {
        match self {
            Self::Accepted { peer, .. } => anonymous_name(peer.ip(), ssrc),
            Self::Source { name, .. } => name.to_string(),
        }
    }

    /// Whether a CNAME learned after the stream started renames it (a configured source keeps
    /// its configured name).
    #[must_use]
    pub const fn takes_late_cname(&self) -> bool {
        matches!(self, Self::Accepted { .. })
    }
}

/// The name of an anonymous stream: the peer's address (not its port, which changes with every
/// connection) and the SSRC, so two pipelines on one host stay apart.
#[must_use]
pub fn anonymous_name(ip: IpAddr, ssrc: u32) -> String {
    let ip = ip.to_canonical();
    format!("anon-{ip}-{ssrc:08x}")
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    #[test]
    fn the_policy_decides_per_peer() {
        let loopback = IpAddr::from(Ipv4Addr::LOCALHOST);
        let mapped_loopback = IpAddr::from(Ipv4Addr::LOCALHOST.to_ipv6_mapped());
        let remote = IpAddr::from(Ipv4Addr::new(192, 0, 2, 7));
        assert!(AnonymousSenders::Allow.allows(remote));
        assert!(AnonymousSenders::Loopback.allows(loopback));
        assert!(AnonymousSenders::Loopback.allows(mapped_loopback));
        assert!(AnonymousSenders::Loopback.allows(IpAddr::from(Ipv6Addr::LOCALHOST)));
        assert!(!AnonymousSenders::Loopback.allows(remote));
        assert!(!AnonymousSenders::Deny.allows(loopback));
    }

    #[test]
    fn names_come_from_the_origin() {
        let peer = SocketAddr::from((Ipv4Addr::new(192, 0, 2, 7), 40_000));
        let accepted = Origin::Accepted {
            peer,
            anonymous_allowed: true,
        };
        assert_eq!(accepted.name_for_rtp_first(0xab), "anon-192.0.2.7-000000ab");
        assert_eq!(accepted.name_for_cname("cam-1"), "cam-1");
        assert!(accepted.takes_late_cname());
        let source = Origin::Source {
            name: "gate".into(),
            peer,
        };
        assert_eq!(source.name_for_rtp_first(0xab), "gate");
        assert_eq!(source.name_for_cname("cam-1"), "gate");
        assert!(!source.takes_late_cname());
        assert!(source.accepts_rtp_first());
        let mapped = SocketAddr::from((Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped(), 1));
        assert_eq!(anonymous_name(mapped.ip(), 1), "anon-192.0.2.7-00000001");
    }
}
