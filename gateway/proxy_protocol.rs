//! The PROXY protocol: learning the client's address from a load balancer.
//!
//! HAProxy (`send-proxy-v2`) and most TCP load balancers open their own
//! connection to popgate and, before the first byte of the client's, send a
//! header naming the client: a text line in version 1,
//!
//! ```text
//! PROXY TCP4 203.0.113.7 10.0.0.2 51234 995\r\n
//! ```
//!
//! or a binary block in version 2 (a 12-octet signature, a command, the
//! address family, a length, the addresses, optional TLVs). A `LOCAL`
//! command (v2) or `UNKNOWN` family (v1) is the proxy speaking for itself,
//! e.g. a health check; then the proxy's own address stands.
//!
//! Only connections from `[proxy_protocol] trusted` are read this way, and
//! from them a header is required: [`ProxyProtocol::client_address`] reads
//! it within the configured timeout, at most [`MAX_HEADER_LEN`] octets,
//! before TLS and before the greeting. A missing or malformed header is an
//! error, and the caller closes the connection without a word. Other
//! addresses are never asked for one: a client that sends a header anyway
//! gets it treated as a (bad) command.
//!
//! Parsing is [`parse`], a pure function over the octets received so far
//! (built on the `ppp` crate). Reading never takes an octet past the header,
//! so the TLS ClientHello or the first command behind it stays in the
//! socket for whoever reads next: each round peeks at what has arrived,
//! consumes it only as far as it is known to be header, and waits for more.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ppp::{v1, v2, PartialResult};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::config::{IpNetwork, ProxyProtocolSettings};

/// The longest header accepted, in octets: a v1 line is at most 107; a v2
/// block is 16 octets plus addresses (216 for Unix sockets) plus TLVs, and
/// popgate reads none of the TLVs, so a little room for a proxy's usual ones
/// (HAProxy's unique-id, SSL information, an AWS endpoint ID) is enough.
pub const MAX_HEADER_LEN: usize = 512;

/// Why a trusted proxy's connection was closed before it was served.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    /// The first octets are not a valid PROXY header.
    #[error("not a valid PROXY header: {0}")]
    Malformed(String),
    /// The header says (or turns out to be) longer than [`MAX_HEADER_LEN`].
    #[error("PROXY header longer than {MAX_HEADER_LEN} octets")]
    TooLarge,
    /// The header did not arrive whole within the timeout.
    #[error("no complete PROXY header within {0:?}")]
    TimedOut(Duration),
    /// The proxy closed the connection before the header ended.
    #[error("connection closed before the PROXY header ended")]
    Closed,
    /// Reading failed.
    #[error("reading the PROXY header: {0}")]
    Io(#[from] io::Error),
}

/// What the octets received so far amount to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// A whole header of `len` octets; `source` is the client it names, or
    /// `None` when the proxy speaks for itself (`LOCAL`, `UNKNOWN`, or an
    /// address family without an IP address).
    Complete {
        /// The header's length: the octets to consume.
        len: usize,
        /// The client's address and port.
        source: Option<SocketAddr>,
    },
    /// The start of a header; more octets are needed.
    Incomplete,
}

/// The longest v1 line, CRLF included (the specification's figure).
const V1_MAX_LEN: usize = 107;

/// Parses the start of a connection from a trusted proxy: `input` is every
/// octet received so far. An error is final; more octets would not help.
pub fn parse(input: &[u8]) -> Result<Parsed, HeaderError> {
    let signature = &v2::PROTOCOL_PREFIX[..input.len().min(v2::PROTOCOL_PREFIX.len())];
    let parsed = if !input.is_empty() && input.starts_with(signature) {
        parse_v2(input)?
    } else {
        parse_v1(input)?
    };
    match parsed {
        Parsed::Complete { len, .. } if len > MAX_HEADER_LEN => Err(HeaderError::TooLarge),
        parsed => Ok(parsed),
    }
}

/// The binary form: ppp tells a short block from a bad one, and reports
/// the announced length as soon as the fixed 16 octets are in.
fn parse_v2(input: &[u8]) -> Result<Parsed, HeaderError> {
    match v2::Header::try_from(input) {
        Ok(header) => Ok(Parsed::Complete {
            len: header.len(),
            source: match (header.command, header.addresses) {
                (v2::Command::Local, _) => None,
                (v2::Command::Proxy, v2::Addresses::IPv4(a)) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                (v2::Command::Proxy, v2::Addresses::IPv6(a)) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                (v2::Command::Proxy, v2::Addresses::Unspecified | v2::Addresses::Unix(_)) => None,
            },
        }),
        Err(v2::ParseError::Partial(_, length)) if 16 + length > MAX_HEADER_LEN => {
            Err(HeaderError::TooLarge)
        }
        Err(error) if error.is_incomplete() => Ok(Parsed::Incomplete),
        Err(error) => Err(HeaderError::Malformed(error.to_string())),
    }
}

/// The text form: one line, given to ppp once it is whole. Before that,
/// anything that cannot begin `PROXY ` is refused at once.
fn parse_v1(input: &[u8]) -> Result<Parsed, HeaderError> {
    let Some(end) = input.iter().position(|&b| b == b'\n') else {
        let start = &input[..input.len().min(6)];
        return if !b"PROXY ".starts_with(start) {
            Err(HeaderError::Malformed(
                "it does not start with PROXY".into(),
            ))
        } else if input.len() >= V1_MAX_LEN {
            Err(HeaderError::Malformed(format!(
                "no line end within {V1_MAX_LEN} octets"
            )))
        } else {
            Ok(Parsed::Incomplete)
        };
    };
    let header = v1::Header::try_from(&input[..=end])
        .map_err(|error| HeaderError::Malformed(error.to_string()))?;
    Ok(Parsed::Complete {
        len: header.header.len(),
        source: match header.addresses {
            v1::Addresses::Tcp4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
            v1::Addresses::Tcp6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
            v1::Addresses::Unknown => None,
        },
    })
}

/// Which peers must send a PROXY header, and how long they have.
#[derive(Debug, Clone)]
pub struct ProxyProtocol {
    trusted: Vec<IpNetwork>,
    timeout: Duration,
}

impl ProxyProtocol {
    /// The policy of the `[proxy_protocol]` section.
    pub fn new(settings: &ProxyProtocolSettings) -> ProxyProtocol {
        ProxyProtocol {
            trusted: settings.trusted.clone(),
            timeout: settings.timeout.0,
        }
    }

    /// True when a connection from `ip` must start with a PROXY header.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|network| network.contains(ip))
    }

    /// The address to serve the connection as: `peer` itself unless it is a
    /// trusted proxy; for a trusted proxy the client named in its header, or
    /// `peer` when the header is `LOCAL`. The header is consumed, and
    /// nothing after it.
    pub async fn client_address(
        &self,
        tcp: &mut TcpStream,
        peer: SocketAddr,
    ) -> Result<SocketAddr, HeaderError> {
        if !self.trusts(peer.ip()) {
            return Ok(peer);
        }
        let source = tokio::time::timeout(self.timeout, read_header(tcp))
            .await
            .map_err(|_| HeaderError::TimedOut(self.timeout))??;
        Ok(match source {
            Some(client) => SocketAddr::new(client.ip().to_canonical(), client.port()),
            None => peer,
        })
    }
}

/// Reads one header off `tcp`, not an octet more; returns the client it names.
async fn read_header(tcp: &mut TcpStream) -> Result<Option<SocketAddr>, HeaderError> {
    let mut buffer = vec![0u8; MAX_HEADER_LEN];
    // Octets consumed so far, all of them known to be header.
    let mut have = 0;
    loop {
        let peeked = tcp.peek(&mut buffer[have..]).await?;
        if peeked == 0 {
            return Err(HeaderError::Closed);
        }
        let (take, done) = match parse(&buffer[..have + peeked])? {
            Parsed::Complete { len, source } => (len, Some(source)),
            Parsed::Incomplete => (have + peeked, None),
        };
        let rest = buffer
            .get_mut(have..take)
            .ok_or_else(|| HeaderError::Malformed("inconsistent header length".into()))?;
        tcp.read_exact(rest).await?;
        have = take;
        if let Some(source) = done {
            return Ok(source);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";

    /// A v2 header: `command` 0x21 PROXY or 0x20 LOCAL, family/protocol
    /// byte, then `body` (addresses and TLVs).
    fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut header = SIGNATURE.to_vec();
        header.extend([command, family]);
        header.extend(u16::try_from(body.len()).unwrap().to_be_bytes());
        header.extend(body);
        header
    }

    fn tcp4(source: [u8; 4], port: u16) -> Vec<u8> {
        let mut body = source.to_vec();
        body.extend([10, 0, 0, 2]);
        body.extend(port.to_be_bytes());
        body.extend(995u16.to_be_bytes());
        v2(0x21, 0x11, &body)
    }

    fn complete(len: usize, source: &str) -> Parsed {
        Parsed::Complete {
            len,
            source: Some(source.parse().unwrap()),
        }
    }

    #[test]
    fn a_v1_line_names_the_client_and_stops_at_its_line_end() {
        let line = b"PROXY TCP4 203.0.113.7 10.0.0.2 51234 995\r\n";
        let mut input = line.to_vec();
        input.extend(b"USER alice\r\n");
        assert_eq!(
            parse(&input).unwrap(),
            complete(line.len(), "203.0.113.7:51234")
        );
        let six = b"PROXY TCP6 2001:db8::7 2001:db8::2 51234 995\r\n";
        assert_eq!(
            parse(six).unwrap(),
            complete(six.len(), "[2001:db8::7]:51234")
        );
        let unknown = b"PROXY UNKNOWN\r\n";
        assert_eq!(
            parse(unknown).unwrap(),
            Parsed::Complete {
                len: unknown.len(),
                source: None
            }
        );
    }

    #[test]
    fn a_v2_block_names_the_client_and_local_names_nobody() {
        let header = tcp4([203, 0, 113, 7], 51234);
        let mut input = header.clone();
        input.extend(b"\x16\x03\x01"); // a TLS ClientHello behind it
        assert_eq!(
            parse(&input).unwrap(),
            complete(header.len(), "203.0.113.7:51234")
        );

        let mut body = vec![0x20, 0x01, 0x0d, 0xb8];
        body.extend([0; 11]);
        body.push(7);
        body.extend([0; 16]);
        body.extend(51234u16.to_be_bytes());
        body.extend(995u16.to_be_bytes());
        body.extend([0x05, 0x00, 0x02, 0xab, 0xcd]); // a unique-id TLV
        let six = v2(0x21, 0x21, &body);
        assert_eq!(
            parse(&six).unwrap(),
            complete(six.len(), "[2001:db8::7]:51234")
        );

        let local = v2(0x20, 0x00, &[]);
        assert_eq!(
            parse(&local).unwrap(),
            Parsed::Complete {
                len: 16,
                source: None
            }
        );
    }

    #[test]
    fn every_prefix_of_a_header_is_incomplete() {
        let v1 = b"PROXY TCP4 203.0.113.7 10.0.0.2 51234 995\r\n".to_vec();
        for header in [v1, tcp4([203, 0, 113, 7], 51234), v2(0x20, 0x00, &[])] {
            for end in 0..header.len() {
                assert_eq!(
                    parse(&header[..end]).unwrap(),
                    Parsed::Incomplete,
                    "{:?}",
                    &header[..end]
                );
            }
        }
    }

    #[test]
    fn other_first_octets_are_refused() {
        for input in [
            &b"USER alice\r\n"[..],
            b"CAPA\r\n",
            b"EHLO client.example.com\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
            b"PROXY TCP4 203.0.113.7\r\n",
            b"PROXY TCP4 not.an.address 10.0.0.2 1 2\r\n",
            b"PROXY TCP5 203.0.113.7 10.0.0.2 51234 995\r\n",
        ] {
            assert!(
                matches!(parse(input), Err(HeaderError::Malformed(_))),
                "{input:?}: {:?}",
                parse(input)
            );
        }
        // Version 1 of the binary form does not exist; nor does command 3.
        for bad in [v2(0x11, 0x11, &[0; 12]), v2(0x23, 0x11, &[0; 12])] {
            assert!(matches!(parse(&bad), Err(HeaderError::Malformed(_))));
        }
    }

    #[test]
    fn long_headers_are_refused_before_they_are_read() {
        // The length field alone gives it away: 16 + 1000 octets.
        let mut start = SIGNATURE.to_vec();
        start.extend([0x21, 0x11]);
        start.extend(1000u16.to_be_bytes());
        assert!(matches!(parse(&start), Err(HeaderError::TooLarge)));
        // The largest accepted block is exactly MAX_HEADER_LEN octets.
        let mut body = vec![203, 0, 113, 7, 10, 0, 0, 2, 0, 1, 0, 2];
        body.resize(MAX_HEADER_LEN - 16, 0);
        assert_eq!(
            parse(&v2(0x21, 0x11, &body)).unwrap(),
            complete(MAX_HEADER_LEN, "203.0.113.7:1")
        );
        body.push(0);
        assert!(matches!(
            parse(&v2(0x21, 0x11, &body)),
            Err(HeaderError::TooLarge)
        ));
        // A v1 line has no line end within 107 octets.
        let long = format!("PROXY TCP4 {}", "1".repeat(120));
        assert!(matches!(
            parse(long.as_bytes()),
            Err(HeaderError::Malformed(_))
        ));
    }

    #[test]
    fn only_listed_addresses_are_trusted() {
        let settings = ProxyProtocolSettings {
            trusted: vec!["10.0.0.5".parse().unwrap(), "10.1.0.0/16".parse().unwrap()],
            ..ProxyProtocolSettings::default()
        };
        let proxies = ProxyProtocol::new(&settings);
        for (ip, trusted) in [
            ("10.0.0.5", true),
            ("10.1.200.3", true),
            ("::ffff:10.0.0.5", true),
            ("10.0.0.6", false),
            ("127.0.0.1", false),
        ] {
            assert_eq!(proxies.trusts(ip.parse().unwrap()), trusted, "{ip}");
        }
        let off = ProxyProtocol::new(&ProxyProtocolSettings::default());
        assert!(!off.trusts("10.0.0.5".parse().unwrap()));
    }
}
