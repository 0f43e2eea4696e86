//! `[control]`: the local socket through which `popgate who`, `popgate
//! kick` and `popgate reload` talk to the running server (see
//! [`crate::control`]).
//!
//! ```toml
//! [control]
//! socket = "/run/popgate/control"   # mode 0600; root or the service user only
//! ```
//!
//! Without the section the default path is tried, and a socket that cannot
//! be made there (no `/run/popgate`, as when popgate is started by hand
//! outside its systemd unit) is logged and skipped: the server serves
//! without it. With the section, a socket that cannot be made stops
//! start-up, naming the key: the administrator asked for it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::SettingError;

/// Where the control socket is when the configuration does not say.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/popgate/control";

/// The longest path a Unix socket can have (`sun_path`, its NUL excluded).
const MAX_SOCKET_PATH: usize = 107;

/// `[control]`: the control socket.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlSettings {
    /// The socket's path, absolute.
    pub socket: PathBuf,
}

impl Default for ControlSettings {
    fn default() -> Self {
        ControlSettings {
            socket: PathBuf::from(DEFAULT_CONTROL_SOCKET),
        }
    }
}

impl ControlSettings {
    /// Checks the path; the error names the key.
    pub fn validate(&self) -> Result<(), SettingError> {
        if !self.socket.is_absolute() {
            return Err(SettingError::new(
                "control.socket",
                format!("`{}` must be an absolute path", self.socket.display()),
            ));
        }
        if self.socket.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(SettingError::new(
                "control.socket",
                format!("a Unix socket path has at most {MAX_SOCKET_PATH} octets"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_socket_path_must_be_absolute_and_short_enough() {
        assert!(ControlSettings::default().validate().is_ok());
        let relative = ControlSettings {
            socket: PathBuf::from("run/control"),
        };
        assert_eq!(relative.validate().unwrap_err().key, "control.socket");
        let long = ControlSettings {
            socket: PathBuf::from(format!("/{}", "d".repeat(120))),
        };
        assert_eq!(long.validate().unwrap_err().key, "control.socket");
    }
}
