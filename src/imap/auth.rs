//! Logging in on a fresh connection: LOGIN, AUTHENTICATE PLAIN (with an authorization identity
//! for master/admin logins) and AUTHENTICATE XOAUTH2, with SASL-IR when offered. Credentials only
//! ever leave their `Secret` here, straight onto the wire; a refusal becomes
//! [`ErrorKind::Auth`] carrying the server's words, never the secret.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use super::conn::Conn;
use super::error::{ErrorKind, ImapError};
use super::settings::ImapAuth;
use super::wire::{Command, RespText, Response};
use crate::secret::Secret;

impl Conn {
    /// Logs in with `auth` and refreshes the capabilities.
    pub(super) async fn login(&mut self, auth: &ImapAuth) -> Result<(), ImapError> {
        let (label, result) = match auth {
            ImapAuth::Login { user, password } => {
                if self.caps.has("LOGINDISABLED") {
                    return Err(ImapError::policy(
                        self.ctx("LOGIN"),
                        "the server disables LOGIN on this connection (LOGINDISABLED)",
                    ));
                }
                let mut cmd = Command::new("LOGIN ");
                cmd.astring(user).text(" ").astring(password.expose());
                ("LOGIN", self.run(&cmd, "LOGIN").await.map(|r| r.done))
            }
            ImapAuth::Plain {
                authzid,
                authcid,
                password,
            } => {
                let payload = format!(
                    "{}\0{}\0{}",
                    authzid.as_deref().unwrap_or(""),
                    authcid,
                    password.expose()
                );
                (
                    "AUTHENTICATE PLAIN",
                    self.sasl("PLAIN", Secret::new(B64.encode(payload))).await,
                )
            }
            ImapAuth::XOAuth2 { user, token } => {
                let payload = format!("user={user}\x01auth=Bearer {}\x01\x01", token.expose());
                (
                    "AUTHENTICATE XOAUTH2",
                    self.sasl("XOAUTH2", Secret::new(B64.encode(payload))).await,
                )
            }
        };
        match result {
            Ok(done) => {
                self.take_capability_code(&done);
                if done.code_name() != Some("CAPABILITY") {
                    self.capability().await?;
                }
                Ok(())
            }
            Err(e) => match e.kind() {
                ErrorKind::No { code, text } => Err(ImapError::new(
                    self.ctx(label),
                    ErrorKind::Auth {
                        server: match code {
                            Some(c) => format!("[{c}] {text}"),
                            None => text.clone(),
                        },
                    },
                )),
                _ => Err(e),
            },
        }
    }

    /// A SASL exchange with one initial response (inline under SASL-IR, else after the first
    /// continuation). Any further challenge (XOAUTH2's error JSON) is answered with an empty line,
    /// after which the server sends the tagged NO.
    async fn sasl(
        &mut self,
        mechanism: &str,
        initial: Secret<String>,
    ) -> Result<RespText, ImapError> {
        let label = format!("AUTHENTICATE {mechanism}");
        self.ensure_usable(&label)?;
        let tag = self.tag();
        let mut sent_initial = self.caps.sasl_ir();
        let line = if sent_initial {
            format!("{tag} AUTHENTICATE {mechanism} {}\r\n", initial.expose())
        } else {
            format!("{tag} AUTHENTICATE {mechanism}\r\n")
        };
        self.write(line.as_bytes(), &label).await?;
        self.flush(&label).await?;
        loop {
            match self.read_response(&label).await? {
                Response::Continue(_) => {
                    let reply = if sent_initial {
                        String::from("\r\n")
                    } else {
                        format!("{}\r\n", initial.expose())
                    };
                    sent_initial = true;
                    self.write(reply.as_bytes(), &label).await?;
                    self.flush(&label).await?;
                }
                Response::Tagged {
                    tag: t,
                    status,
                    text,
                } if t == tag => return self.completion(status, text, &label),
                _ => {}
            }
        }
    }
}
