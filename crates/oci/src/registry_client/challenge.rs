//! `WWW-Authenticate` challenges (RFC 7235 auth-params) and the token request a Bearer
//! challenge asks for (the distribution "token authentication" flow).

/// What a registry's 401 asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// Fetch a token from `realm` (with `service` and `scope` as query parameters), then retry.
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
    /// Send the credentials themselves (RFC 7617); `realm` only names the protection space.
    Basic { realm: Option<String> },
    /// Any other scheme (e.g. `Negotiate`): one mcp does not speak.
    Other(String),
}

/// Parses one challenge: `Bearer realm="...",service="...",scope="..."` or
/// `Basic realm="..."`. Quoted values may hold commas (`scope="repository:a:pull,push"`) and
/// backslash escapes.
pub(crate) fn parse(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, params) = header
        .split_once(char::is_whitespace)
        .unwrap_or((header, ""));
    if scheme.is_empty() {
        return None;
    }
    let bearer = scheme.eq_ignore_ascii_case("bearer");
    if !bearer && !scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Other(scheme.to_string()));
    }
    // Basic needs no parameter, so odd ones do not make it unusable.
    let params = match auth_params(params) {
        Some(params) => params,
        None if !bearer => Vec::new(),
        None => return None,
    };
    let get = |key: &str| {
        params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.clone())
    };
    if !bearer {
        return Some(Challenge::Basic {
            realm: get("realm"),
        });
    }
    Some(Challenge::Bearer {
        realm: get("realm")?,
        service: get("service"),
        scope: get("scope"),
    })
}

/// `key=value` pairs separated by commas; values are tokens or quoted strings.
fn auth_params(text: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(out);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') || key.is_empty() {
            return None;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => value.push(chars.next()?),
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' || c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((key, value));
    }
}

/// The token endpoint's URL: the realm with `service` and `scope` added as query parameters.
/// A challenge without a scope gets pull access to `repository`.
pub(crate) fn token_url(
    realm: &str,
    service: Option<&str>,
    scope: Option<&str>,
    repository: &str,
) -> String {
    let default_scope = format!("repository:{repository}:pull");
    let mut url = realm.to_string();
    let mut sep = if realm.contains('?') { '&' } else { '?' };
    if let Some(service) = service {
        url.push(sep);
        url.push_str("service=");
        url.push_str(&encode(service));
        sep = '&';
    }
    url.push(sep);
    url.push_str("scope=");
    url.push_str(&encode(scope.unwrap_or(&default_scope)));
    url
}

/// Percent-encoding of a query value: everything but RFC 3986's unreserved characters.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn bearer_challenge_with_quoted_commas() {
        let c = parse(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push""#,
        )
        .unwrap();
        assert_eq!(
            c,
            Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:samalba/my-app:pull,push".into()),
            }
        );
    }

    #[test]
    fn scheme_is_case_insensitive_and_spacing_and_tokens_are_tolerated() {
        let c = parse(r#"bearer  realm = "http://h/t" , service=reg, error="insufficient_scope""#)
            .unwrap();
        assert_eq!(
            c,
            Challenge::Bearer {
                realm: "http://h/t".into(),
                service: Some("reg".into()),
                scope: None,
            }
        );
        let c = parse(r#"Bearer realm="a\"b""#).unwrap();
        assert!(matches!(c, Challenge::Bearer { realm, .. } if realm == "a\"b"));
    }

    #[test]
    fn basic_other_schemes_and_malformed_challenges() {
        assert_eq!(
            parse(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic {
                realm: Some("Registry Realm".into())
            })
        );
        assert_eq!(
            parse(r#"basic realm="r", charset="UTF-8""#),
            Some(Challenge::Basic {
                realm: Some("r".into())
            })
        );
        assert_eq!(parse("Basic"), Some(Challenge::Basic { realm: None }));
        assert_eq!(
            parse(r#"Basic realm="unterminated"#),
            Some(Challenge::Basic { realm: None })
        );
        assert_eq!(
            parse("Negotiate abc"),
            Some(Challenge::Other("Negotiate".into()))
        );
        assert_eq!(parse(""), None);
        assert_eq!(parse("Bearer service=\"x\""), None, "no realm");
        assert_eq!(parse("Bearer realm=\"unterminated"), None);
        assert_eq!(parse("Bearer =x"), None);
    }

    #[test]
    fn token_url_encodes_parameters_and_defaults_the_scope() {
        assert_eq!(
            token_url(
                "https://auth.example/token",
                Some("reg.example"),
                Some("repository:team/app:pull"),
                "ignored"
            ),
            "https://auth.example/token?service=reg.example&scope=repository%3Ateam%2Fapp%3Apull"
        );
        assert_eq!(
            token_url("http://h/t?x=1", None, None, "hello"),
            "http://h/t?x=1&scope=repository%3Ahello%3Apull"
        );
    }
}
