//! Who is calling the API: an API key, compared by its SHA-256 in constant time, or a JWT bearer
//! token verified locally (HS256 with a shared secret; RS256/ES256 with the keys of a JWKS file,
//! reloaded when the file changes). Keys and tokens are never logged or echoed.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use axum::http::{header, HeaderMap, HeaderValue};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use subtle::ConstantTimeEq as _;

use super::ApiError;
use crate::config::{hash_api_key, read_jwks, ApiConfig};

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Caller {
    /// An API key, by its SHA-256 (so a reload that adds or removes other keys keeps its rate
    /// limit apart).
    Key([u8; 32]),
    /// The `sub` of a verified token.
    Subject(String),
}

/// Checks the `Authorization` or `X-API-Key` header of a request.
pub struct Authenticator {
    key_hashes: Vec<[u8; 32]>,
    jwt: Option<JwtVerifier>,
}

struct JwtVerifier {
    hs256: Option<DecodingKey>,
    jwks: Option<JwksFile>,
    issuer: Option<String>,
    audience: Option<String>,
    leeway: u64,
}

/// The keys of a JWKS file and the modification time they were read at.
struct JwksFile {
    path: PathBuf,
    loaded: RwLock<(Option<SystemTime>, Arc<Vec<VerifyKey>>)>,
}

#[derive(Clone)]
struct VerifyKey {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

/// The claims turnd reads; `exp`, `iss`, `aud` and `nbf` are checked by `jsonwebtoken`.
#[derive(serde::Deserialize)]
struct Claims {
    sub: String,
}

impl Authenticator {
    /// From the validated `[api]` table; fails only when the JWKS file cannot be read now.
    pub fn new(api: &ApiConfig) -> Result<Self, String> {
        let jwt = match &api.jwt {
            None => None,
            Some(jwt) => {
                let jwks = match &jwt.jwks_file {
                    None => None,
                    Some(path) => {
                        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
                        let set = read_jwks(path).map_err(|e| format!("api.jwt.jwks-file: {e}"))?;
                        let loaded = RwLock::new((modified, Arc::new(verify_keys(&set))));
                        Some(JwksFile { path: path.clone(), loaded })
                    }
                };
                Some(JwtVerifier {
                    hs256: jwt.secret.as_ref().map(|s| DecodingKey::from_secret(s.as_bytes())),
                    jwks,
                    issuer: jwt.issuer.clone(),
                    audience: jwt.audience.clone(),
                    leeway: jwt.leeway,
                })
            }
        };
        Ok(Authenticator { key_hashes: api.key_hashes.clone(), jwt })
    }

    /// The caller named by `X-API-Key: KEY` or `Authorization: Bearer KEY-OR-TOKEN`
    /// (`X-API-Key` wins when both are sent); 401 otherwise.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        if let Some(value) = headers.get("x-api-key") {
            return self.api_key(text(value)?);
        }
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(ApiError::unauthorized(
                "missing credentials: send `Authorization: Bearer <API key or token>` or `X-API-Key: <key>`",
            ));
        };
        let value = text(value)?;
        let bearer = value
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, rest)| rest.trim())
            .ok_or_else(|| ApiError::unauthorized("the Authorization header must be `Bearer <API key or token>`"))?;
        match &self.jwt {
            Some(jwt) if looks_like_jwt(bearer) => match jwt.verify(bearer) {
                Ok(subject) => Ok(Caller::Subject(subject)),
                Err(reason) => Err(ApiError::unauthorized(format!("invalid token: {reason}"))),
            },
            _ => self.api_key(bearer),
        }
    }

    /// Re-reads the JWKS file when its modification time changed; a file that no longer parses
    /// leaves the keys as they were.
    pub fn reload_jwks_if_changed(&self) {
        let Some(file) = self.jwt.as_ref().and_then(|j| j.jwks.as_ref()) else { return };
        let modified = std::fs::metadata(&file.path).and_then(|m| m.modified()).ok();
        if file.loaded.read().map(|l| l.0 == modified).unwrap_or(true) {
            return;
        }
        match read_jwks(&file.path) {
            Ok(set) => {
                let keys = verify_keys(&set);
                tracing::info!(path = %file.path.display(), keys = keys.len(), "api: reloaded the JWKS file");
                if let Ok(mut loaded) = file.loaded.write() {
                    *loaded = (modified, Arc::new(keys));
                }
            }
            Err(e) => tracing::warn!(error = %e, "api: keeping the previous JWT keys"),
        }
    }

    fn api_key(&self, key: &str) -> Result<Caller, ApiError> {
        let hash = hash_api_key(key);
        // Every hash is compared, so the time taken does not tell which one matched.
        let mut found = false;
        for known in &self.key_hashes {
            found |= bool::from(known.ct_eq(&hash));
        }
        if found {
            Ok(Caller::Key(hash))
        } else {
            Err(ApiError::unauthorized("invalid API key"))
        }
    }
}

impl JwtVerifier {
    /// The token's subject, or why it is refused (never the token itself).
    fn verify(&self, token: &str) -> Result<String, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| "malformed token header".to_owned())?;
        //= https://www.rfc-editor.org/rfc/rfc7515#section-4.1.11
        // An extension listed in `crit` must be understood, and turnd understands none
        // (jsonwebtoken parses `crit` but does not check it).
        if header.crit.as_ref().is_some_and(|crit| !crit.is_empty()) {
            return Err("it has critical header extensions (crit), which turnd does not support".into());
        }
        let key = match header.alg {
            Algorithm::HS256 => self.hs256.clone().ok_or("HS256 tokens are not accepted")?,
            Algorithm::RS256 | Algorithm::ES256 => {
                let file = self.jwks.as_ref().ok_or("RS256 and ES256 tokens are not accepted")?;
                let keys = file.loaded.read().map(|l| Arc::clone(&l.1)).map_err(|_| "key set unavailable")?;
                find_key(&keys, header.kid.as_deref(), header.alg)?
            }
            other => return Err(format!("{other:?} tokens are not accepted")),
        };
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.leeway;
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        match &self.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| describe(e.kind()))?;
        Ok(data.claims.sub)
    }
}

/// The key for a token's `kid` and algorithm; without a `kid`, the only key of that algorithm.
fn find_key(keys: &[VerifyKey], kid: Option<&str>, alg: Algorithm) -> Result<DecodingKey, String> {
    let mut candidates = keys.iter().filter(|k| k.alg == alg);
    let found = match kid {
        Some(kid) => candidates.find(|k| k.kid.as_deref() == Some(kid)),
        None => match (candidates.next(), candidates.next()) {
            (Some(only), None) => Some(only),
            _ => None,
        },
    };
    found.map(|k| k.key.clone()).ok_or_else(|| "no key in the key set matches the token's kid and alg".to_owned())
}

/// Decoding keys of a (filtered, see [`read_jwks`]) key set, with the algorithm each verifies.
fn verify_keys(set: &JwkSet) -> Vec<VerifyKey> {
    set.keys
        .iter()
        .filter_map(|jwk| {
            let alg = match (jwk.common.key_algorithm, &jwk.algorithm) {
                (Some(KeyAlgorithm::ES256), _) | (None, AlgorithmParameters::EllipticCurve(_)) => Algorithm::ES256,
                (Some(KeyAlgorithm::RS256), _) | (None, AlgorithmParameters::RSA(_)) => Algorithm::RS256,
                _ => return None,
            };
            let key = DecodingKey::from_jwk(jwk).ok()?;
            Some(VerifyKey { kid: jwk.common.key_id.clone(), alg, key })
        })
        .collect()
}

/// Why a token was refused, in words a client developer can act on.
fn describe(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::ExpiredSignature => "it has expired".into(),
        ErrorKind::ImmatureSignature => "it is not valid yet (nbf)".into(),
        ErrorKind::InvalidIssuer => "wrong issuer (iss)".into(),
        ErrorKind::InvalidAudience => "wrong audience (aud)".into(),
        ErrorKind::InvalidSignature => "bad signature".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("missing claim `{claim}`"),
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => "algorithm does not match the key".into(),
        _ => "malformed token".into(),
    }
}

/// A header value as text; anything else is a 401 (the value is not echoed).
fn text(value: &HeaderValue) -> Result<&str, ApiError> {
    value.to_str().map(str::trim).map_err(|_| ApiError::unauthorized("the credentials header is not visible ASCII"))
}

/// Three base64url parts separated by dots, the first a JSON object (`eyJ` is `{"`).
fn looks_like_jwt(token: &str) -> bool {
    let base64url = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    token.starts_with("eyJ") && token.split('.').count() == 3 && token.bytes().all(|b| b == b'.' || base64url(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_shape() {
        assert!(looks_like_jwt("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.sig-_nature"));
        for not in ["", "eyJ", "abc.def.ghi", "eyJa.b", "eyJa.b.c.d", "eyJa.b c.d", "eyJa.b+/.c"] {
            assert!(!looks_like_jwt(not), "{not}");
        }
    }

    #[test]
    fn tokens_without_kid_need_a_single_candidate() {
        let key =
            |kid: Option<&str>, alg| VerifyKey { kid: kid.map(Into::into), alg, key: DecodingKey::from_secret(b"x") };
        let one = [key(Some("a"), Algorithm::RS256), key(Some("b"), Algorithm::ES256)];
        assert!(find_key(&one, None, Algorithm::RS256).is_ok());
        assert!(find_key(&one, Some("b"), Algorithm::ES256).is_ok());
        assert!(find_key(&one, Some("b"), Algorithm::RS256).is_err());
        assert!(find_key(&one, Some("c"), Algorithm::ES256).is_err());
        let two = [key(Some("a"), Algorithm::RS256), key(Some("b"), Algorithm::RS256)];
        assert!(find_key(&two, None, Algorithm::RS256).is_err());
    }
}
