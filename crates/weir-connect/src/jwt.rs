//! RS256 JSON Web Tokens signed with an RSA private key (PKCS#8 PEM): how Snowflake's key-pair login and Google's
//! service accounts prove who the client is. ring signs; nothing else is needed.

use base64::Engine as _;
use weir_core::{Error, Result};

/// An RSA private key read from a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
pub struct RsaKey {
    key: ring::signature::RsaKeyPair,
}

impl std::fmt::Debug for RsaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RsaKey(***)")
    }
}

impl RsaKey {
    /// `what` names the setting in errors (`snowflake private_key`).
    pub fn from_pem(pem: &str, what: &str) -> Result<RsaKey> {
        let bad = |msg: &str| Error::config(Default::default(), format!("{what}: {msg}"));
        if pem.contains("ENCRYPTED PRIVATE KEY") {
            return Err(bad("the key is encrypted; give an unencrypted PKCS#8 key (`openssl pkcs8 -nocrypt`)"));
        }
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).map(str::trim).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| bad("not a PEM key (`-----BEGIN PRIVATE KEY-----`)"))?;
        let key = ring::signature::RsaKeyPair::from_pkcs8(&der)
            .map_err(|e| bad(&format!("not a PKCS#8 RSA private key ({e})")))?;
        Ok(RsaKey { key })
    }

    /// The public key as PKCS#1 `RSAPublicKey` DER.
    pub fn public_key(&self) -> &[u8] {
        ring::signature::KeyPair::public_key(&self.key).as_ref()
    }

    /// A signed token: `header.claims.signature`, each base64url without padding.
    pub fn sign(&self, claims: &serde_json::Value) -> Result<String> {
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = url.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        let signing_input = format!("{header}.{}", url.encode(claims.to_string()));
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| Error::engine("jwt", "could not sign a token"))?;
        Ok(format!("{signing_input}.{}", url.encode(signature)))
    }
}
