//! Where the database lives: parsing `sqlite://` URLs and the default path under the user's data
//! directory. Reads environment variables; touches no files.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use backout_store::StoreError;

/// A parsed database URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Location {
    /// A database file; relative paths are relative to the current directory.
    File(PathBuf),
    /// A private in-memory database (tests).
    Memory,
}

/// Parses `sqlite:///abs/path.db`, `sqlite://relative.db`, `sqlite:relative.db` or
/// `sqlite::memory:`. The path is taken literally (no percent-decoding), and query options are
/// refused because the store sets its own.
pub(crate) fn parse_url(url: &str) -> Result<Location, StoreError> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| {
            StoreError::invalid(format!(
                "`{url}` is not a SQLite URL (expected `sqlite://PATH`)"
            ))
        })?;
    if rest == ":memory:" {
        return Ok(Location::Memory);
    }
    if rest.is_empty() {
        return Err(StoreError::invalid(format!(
            "`{url}` names no database file"
        )));
    }
    if rest.contains('?') {
        return Err(StoreError::invalid(format!(
            "`{url}` has query options; backout sets its own SQLite options"
        )));
    }
    Ok(Location::File(PathBuf::from(rest)))
}

/// The file a `sqlite://` URL names, or `None` for an in-memory database or a URL that is not
/// one (so a caller can tell whether a store exists before opening creates it).
pub fn database_file(url: &str) -> Option<PathBuf> {
    match parse_url(url) {
        Ok(Location::File(path)) => Some(path),
        _ => None,
    }
}

/// The default database file: `$XDG_DATA_HOME/backout/backout.db`, else
/// `$HOME/.local/share/backout/backout.db`.
pub fn default_database_path() -> Result<PathBuf, StoreError> {
    default_path_from(std::env::var_os("XDG_DATA_HOME"), std::env::var_os("HOME")).ok_or_else(
        || {
            StoreError::invalid(
                "neither XDG_DATA_HOME nor HOME is set; give a database URL (--database)",
            )
        },
    )
}

/// [`default_database_path`] as a `sqlite://` URL.
pub fn default_database_url() -> Result<String, StoreError> {
    let path = default_database_path()?;
    let text = path.to_str().ok_or_else(|| {
        StoreError::invalid(format!(
            "default database path `{}` is not valid UTF-8; give a database URL (--database)",
            path.display()
        ))
    })?;
    Ok(format!("sqlite://{text}"))
}

fn default_path_from(xdg_data_home: Option<OsString>, home: Option<OsString>) -> Option<PathBuf> {
    // The XDG spec says to ignore a relative XDG_DATA_HOME.
    let data_dir = xdg_data_home
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute())
        .or_else(|| {
            home.filter(|home| !home.is_empty())
                .map(|home| Path::new(&home).join(".local").join("share"))
        })?;
    Some(data_dir.join("backout").join("backout.db"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_absolute_relative_and_memory_urls() {
        assert_eq!(
            parse_url("sqlite:///var/lib/backout/backout.db").expect("absolute"),
            Location::File(PathBuf::from("/var/lib/backout/backout.db"))
        );
        assert_eq!(
            parse_url("sqlite://relative.db").expect("relative"),
            Location::File(PathBuf::from("relative.db"))
        );
        assert_eq!(
            parse_url("sqlite:data/backout.db").expect("short form"),
            Location::File(PathBuf::from("data/backout.db"))
        );
        assert_eq!(
            parse_url("sqlite::memory:").expect("memory"),
            Location::Memory
        );
        assert_eq!(
            parse_url("sqlite://:memory:").expect("memory"),
            Location::Memory
        );
    }

    #[test]
    fn refuses_other_urls() {
        for url in [
            "postgres://localhost/db",
            "/plain/path.db",
            "sqlite://",
            "sqlite://x.db?mode=ro",
        ] {
            let error = parse_url(url).expect_err(url);
            assert!(
                matches!(error, StoreError::Invalid { .. }),
                "{url}: {error:?}"
            );
        }
    }

    #[test]
    fn default_path_prefers_absolute_xdg_data_home() {
        let path = |xdg: Option<&str>, home: Option<&str>| {
            default_path_from(xdg.map(OsString::from), home.map(OsString::from))
        };
        assert_eq!(
            path(Some("/data"), Some("/home/u")),
            Some(PathBuf::from("/data/backout/backout.db"))
        );
        assert_eq!(
            path(None, Some("/home/u")),
            Some(PathBuf::from("/home/u/.local/share/backout/backout.db"))
        );
        assert_eq!(
            path(Some("relative"), Some("/home/u")),
            Some(PathBuf::from("/home/u/.local/share/backout/backout.db")),
            "a relative XDG_DATA_HOME is ignored"
        );
        assert_eq!(
            path(Some(""), Some("/home/u")),
            Some(PathBuf::from("/home/u/.local/share/backout/backout.db"))
        );
        assert_eq!(path(None, None), None);
        assert_eq!(path(None, Some("")), None);
    }
}
