//! Signing SETs as compact JWS (RFC 7515) with `typ: secevent+jwt` (RFC 8417 §2.3).
//!
//! Algorithms: `HS256` (HMAC-SHA-256 with a shared secret of at least 32 bytes, via the `hmac`
//! crate), `ES256` (ECDSA P-256, fixed-width `r || s` signature) and `RS256` (RSASSA-PKCS1-v1_5
//! with SHA-256), both via `ring`, which the TLS stack already compiles in. Private keys are
//! PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`); convert others with
//! `openssl pkcs8 -topk8 -nocrypt`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Sha256;
use std::fmt;

/// The shortest HS256 secret accepted (RFC 7518 §3.2: at least the hash size).
pub const MIN_HMAC_KEY_BYTES: usize = 32;

/// A JWS signing algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SigningAlg {
    /// HMAC with SHA-256 and a shared secret.
    #[default]
    HS256,
    /// ECDSA P-256 with SHA-256.
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
}

impl SigningAlg {
    /// The JWS `alg` value.
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::HS256 => "HS256",
            SigningAlg::ES256 => "ES256",
            SigningAlg::RS256 => "RS256",
        }
    }
}

enum Key {
    Hmac(Vec<u8>),
    Ecdsa(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// A configured signer. Its `Debug` never shows key material.
pub struct Signer {
    alg: SigningAlg,
    key: Key,
    key_id: Option<String>,
    rng: SystemRandom,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("alg", &self.alg)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// The DER bytes of the first PEM block labelled `PRIVATE KEY`.
fn pkcs8_der(pem: &[u8]) -> Result<Vec<u8>, String> {
    let text = std::str::from_utf8(pem).map_err(|_| "the key file is not PEM text")?;
    let begin = "-----BEGIN PRIVATE KEY-----";
    let end = "-----END PRIVATE KEY-----";
    let start = text.find(begin).ok_or(
        "the key file holds no PKCS#8 `PRIVATE KEY` block (convert with openssl pkcs8 -topk8 -nocrypt)",
    )?;
    let body = &text[start + begin.len()..];
    let stop = body.find(end).ok_or("the PEM block is not terminated")?;
    let b64: String = body[..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| format!("the PEM block is not base64: {e}"))
}

impl Signer {
    /// A signer for `alg`: `secret` is the HS256 key; `pem` the PKCS#8 private key for ES256
    /// and RS256.
    pub fn new(
        alg: SigningAlg,
        secret: Option<&[u8]>,
        pem: Option<&[u8]>,
        key_id: Option<String>,
    ) -> Result<Signer, String> {
        let rng = SystemRandom::new();
        let key = match alg {
            SigningAlg::HS256 => {
                let secret = secret.ok_or("HS256 needs key or key_file (the shared secret)")?;
                if secret.len() < MIN_HMAC_KEY_BYTES {
                    return Err(format!(
                        "the HS256 secret has {} bytes; at least {MIN_HMAC_KEY_BYTES} are required",
                        secret.len()
                    ));
                }
                Key::Hmac(secret.to_vec())
            }
            SigningAlg::ES256 => {
                let der = pkcs8_der(pem.ok_or("ES256 needs key_file (a PKCS#8 PEM P-256 key)")?)?;
                Key::Ecdsa(
                    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng)
                        .map_err(|e| format!("not a PKCS#8 P-256 private key: {e}"))?,
                )
            }
            SigningAlg::RS256 => {
                let der = pkcs8_der(pem.ok_or("RS256 needs key_file (a PKCS#8 PEM RSA key)")?)?;
                Key::Rsa(
                    RsaKeyPair::from_pkcs8(&der)
                        .map_err(|e| format!("not a PKCS#8 RSA private key: {e}"))?,
                )
            }
        };
        Ok(Signer {
            alg,
            key,
            key_id,
            rng,
        })
    }

    /// The algorithm.
    pub fn alg(&self) -> SigningAlg {
        self.alg
    }

    /// The protected header of every SET this signer makes.
    pub fn header(&self) -> Value {
        let mut h = json!({"alg": self.alg.as_str(), "typ": "secevent+jwt"});
        if let Some(kid) = &self.key_id {
            h["kid"] = json!(kid);
        }
        h
    }

    /// Signs `claims` as a compact JWS.
    pub fn sign(&self, claims: &Value) -> Result<String, String> {
        let header = serde_json::to_vec(&self.header()).map_err(|e| e.to_string())?;
        let payload = serde_json::to_vec(claims).map_err(|e| e.to_string())?;
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let signature = match &self.key {
            Key::Hmac(secret) => {
                let mut mac =
                    Hmac::<Sha256>::new_from_slice(secret).map_err(|e| format!("HMAC key: {e}"))?;
                mac.update(input.as_bytes());
                mac.finalize().into_bytes().to_vec()
            }
            Key::Ecdsa(kp) => kp
                .sign(&self.rng, input.as_bytes())
                .map_err(|_| "ECDSA signing failed")?
                .as_ref()
                .to_vec(),
            Key::Rsa(kp) => {
                let mut sig = vec![0; kp.public().modulus_len()];
                kp.sign(&RSA_PKCS1_SHA256, &self.rng, input.as_bytes(), &mut sig)
                    .map_err(|_| "RSA signing failed")?;
                sig
            }
        };
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{ECDSA_P256_SHA256_FIXED, KeyPair, UnparsedPublicKey};

    fn parts(jws: &str) -> (Value, Value, Vec<u8>, String) {
        let mut it = jws.split('.');
        let (h, p, s) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
        assert!(it.next().is_none());
        let dec = |x: &str| URL_SAFE_NO_PAD.decode(x).unwrap();
        (
            serde_json::from_slice(&dec(h)).unwrap(),
            serde_json::from_slice(&dec(p)).unwrap(),
            dec(s),
            format!("{h}.{p}"),
        )
    }

    #[test]
    fn hs256_signatures_verify_with_the_shared_secret() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let s = Signer::new(SigningAlg::HS256, Some(secret), None, Some("k1".into())).unwrap();
        let jws = s.sign(&json!({"jti": "1"})).unwrap();
        let (h, p, sig, input) = parts(&jws);
        assert_eq!(
            h,
            json!({"alg": "HS256", "typ": "secevent+jwt", "kid": "k1"})
        );
        assert_eq!(p["jti"], "1");
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(input.as_bytes());
        assert!(mac.verify_slice(&sig).is_ok());
    }

    #[test]
    fn es256_signatures_verify_with_the_public_key() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref())
        );
        let s = Signer::new(SigningAlg::ES256, None, Some(pem.as_bytes()), None).unwrap();
        let jws = s.sign(&json!({"jti": "2"})).unwrap();
        let (h, _, sig, input) = parts(&jws);
        assert_eq!(h["alg"], "ES256");
        assert_eq!(sig.len(), 64);
        let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let public = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, kp.public_key().as_ref());
        assert!(public.verify(input.as_bytes(), &sig).is_ok());
    }

    #[test]
    fn weak_or_missing_keys_are_refused() {
        assert!(Signer::new(SigningAlg::HS256, Some(b"short"), None, None).is_err());
        assert!(Signer::new(SigningAlg::HS256, None, None, None).is_err());
        assert!(Signer::new(SigningAlg::ES256, None, Some(b"not pem"), None).is_err());
        let e = Signer::new(
            SigningAlg::RS256,
            None,
            Some(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
            None,
        )
        .unwrap_err();
        assert!(e.contains("RSA"), "{e}");
        let s = Signer::new(SigningAlg::HS256, Some(&[7; 32]), None, None).unwrap();
        assert!(!format!("{s:?}").contains('7'));
    }
}
