//! The hash algorithms a checksum may name: the SHA-2 family (FIPS 180-4) and SHA-3 (FIPS
//! 202), as NFV-SOL 004 manifests, AppD `swImageDescriptor` checksums and `CreateAppPkg`
//! checksums name them ("SHA-256", "SHA-512", "SHA3-256", …).

use std::io::Write;

use openssl::hash::{Hasher, MessageDigest};

/// A supported hash algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgorithm {
    /// SHA-224.
    Sha224,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
    /// SHA3-224.
    Sha3_224,
    /// SHA3-256.
    Sha3_256,
    /// SHA3-384.
    Sha3_384,
    /// SHA3-512.
    Sha3_512,
}

/// Every supported algorithm, by its canonical name.
pub const ALGORITHMS: [HashAlgorithm; 8] = [
    HashAlgorithm::Sha224,
    HashAlgorithm::Sha256,
    HashAlgorithm::Sha384,
    HashAlgorithm::Sha512,
    HashAlgorithm::Sha3_224,
    HashAlgorithm::Sha3_256,
    HashAlgorithm::Sha3_384,
    HashAlgorithm::Sha3_512,
];

impl HashAlgorithm {
    /// The algorithm `name` names, in any case, with or without the hyphen ("SHA-512",
    /// "sha512", "SHA_512", "SHA3-256", "sha3_256").
    pub fn parse(name: &str) -> Option<Self> {
        let norm: String = name
            .chars()
            .filter(|c| !matches!(c, '-' | '_'))
            .collect::<String>()
            .to_ascii_uppercase();
        ALGORITHMS
            .into_iter()
            .find(|a| a.name().replace('-', "") == norm)
    }

    /// The canonical name, e.g. "SHA-256" or "SHA3-512".
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha224 => "SHA-224",
            Self::Sha256 => "SHA-256",
            Self::Sha384 => "SHA-384",
            Self::Sha512 => "SHA-512",
            Self::Sha3_224 => "SHA3-224",
            Self::Sha3_256 => "SHA3-256",
            Self::Sha3_384 => "SHA3-384",
            Self::Sha3_512 => "SHA3-512",
        }
    }

    /// Length of a digest in hex digits.
    pub fn hex_len(self) -> usize {
        self.message_digest().size() * 2
    }

    fn message_digest(self) -> MessageDigest {
        match self {
            Self::Sha224 => MessageDigest::sha224(),
            Self::Sha256 => MessageDigest::sha256(),
            Self::Sha384 => MessageDigest::sha384(),
            Self::Sha512 => MessageDigest::sha512(),
            Self::Sha3_224 => MessageDigest::sha3_224(),
            Self::Sha3_256 => MessageDigest::sha3_256(),
            Self::Sha3_384 => MessageDigest::sha3_384(),
            Self::Sha3_512 => MessageDigest::sha3_512(),
        }
    }

    /// Whether `hash` is a well-formed digest of this algorithm (hex digits of its length).
    pub fn well_formed(self, hash: &str) -> bool {
        hash.len() == self.hex_len() && hash.bytes().all(|b| b.is_ascii_hexdigit())
    }

    /// A streaming digest: write the content, then [`Digest::finish`].
    pub fn digest(self) -> Result<Digest, openssl::error::ErrorStack> {
        Ok(Digest(Hasher::new(self.message_digest())?))
    }
}

/// The names of every supported algorithm, for error messages.
pub fn algorithm_names() -> String {
    ALGORITHMS.map(HashAlgorithm::name).join(", ")
}

/// A digest being computed.
pub struct Digest(Hasher);

impl Digest {
    /// The digest of what was written, in lowercase hex.
    pub fn finish(mut self) -> Result<String, openssl::error::ErrorStack> {
        Ok(crate::hex(&self.0.finish()?))
    }
}

impl Write for Digest {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(algorithm: HashAlgorithm, content: &[u8]) -> String {
        let mut d = algorithm.digest().unwrap();
        d.write_all(content).unwrap();
        d.finish().unwrap()
    }

    #[test]
    fn known_answers() {
        // FIPS 180-4 and FIPS 202 examples for "abc"
        let abc = [
            (HashAlgorithm::Sha224, "23097d22"),
            (HashAlgorithm::Sha256, "ba7816bf"),
            (HashAlgorithm::Sha384, "cb00753f"),
            (HashAlgorithm::Sha512, "ddaf35a1"),
            (HashAlgorithm::Sha3_224, "e642824c"),
            (HashAlgorithm::Sha3_256, "3a985da7"),
            (HashAlgorithm::Sha3_384, "ec01498288"),
            (HashAlgorithm::Sha3_512, "b751850b"),
        ];
        for (algorithm, prefix) in abc {
            let hash = of(algorithm, b"abc");
            assert!(hash.starts_with(prefix), "{algorithm:?}: {hash}");
            assert!(algorithm.well_formed(&hash), "{algorithm:?}");
            assert!(!algorithm.well_formed(&hash[1..]), "{algorithm:?}");
        }
    }

    #[test]
    fn names() {
        for a in ALGORITHMS {
            assert_eq!(HashAlgorithm::parse(a.name()), Some(a));
            assert_eq!(HashAlgorithm::parse(&a.name().to_lowercase()), Some(a));
        }
        assert_eq!(HashAlgorithm::parse("sha512"), Some(HashAlgorithm::Sha512));
        assert_eq!(
            HashAlgorithm::parse("SHA3_256"),
            Some(HashAlgorithm::Sha3_256)
        );
        for bad in ["MD5", "SHA-1", "SHA-257", "", "SHA3"] {
            assert_eq!(HashAlgorithm::parse(bad), None, "{bad}");
        }
    }
}
