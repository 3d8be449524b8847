//! The Graph URL grammar below `/users/{id}`: folder chains (`mailFolders/{id}/childFolders/{id}`),
//! messages (in a folder or the whole mailbox), `$value`, attachments, upload sessions and
//! importMime; path segments ignore case, as Graph's do. `execute` sends each (method, route)
//! pair to its handler.

use std::sync::Arc;

use axum::http::Method;

use super::dispatch::{Call, Reply};
use super::errors::ApiError;
use super::odata::Query;
use super::{Emu, folders, messages, upload, views};

/// Context of one Graph request on one mailbox.
pub(crate) struct Ctx<'a> {
    pub emu: &'a Arc<Emu>,
    pub base: &'a str,
    pub version: &'a str,
    /// The `{id}` of `/users/{id}` as the client wrote it.
    pub user: String,
    /// Store key of the mailbox.
    pub mailbox: String,
    pub client_id: String,
    pub query: Query,
    /// Raw request path, for `@odata.nextLink`.
    pub path: String,
}

impl Ctx<'_> {
    /// `{base}/{version}/$metadata#users('{user}')/{tail}`.
    pub fn context(&self, tail: &str) -> String {
        format!(
            "{}/{}/$metadata#users('{}')/{tail}",
            self.base, self.version, self.user
        )
    }
    /// The request URL without its query, for paging links.
    pub fn url(&self) -> String {
        format!("{}{}", self.base, self.path)
    }
}

/// A message sub-resource.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum MsgTail {
    Item,
    Value,
    Attachments,
    Attachment(String),
    UploadSession,
}

/// Where a Graph request points.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Route {
    /// `mailFolders` (None) or `.../childFolders` of the chain's last folder.
    Folders(Option<Vec<String>>),
    Folder(Vec<String>),
    Messages(Option<Vec<String>>),
    Message {
        folder: Option<Vec<String>>,
        id: String,
        tail: MsgTail,
    },
    ImportMime(Vec<String>),
}

fn is(seg: &str, name: &str) -> bool {
    seg.eq_ignore_ascii_case(name) || seg.eq_ignore_ascii_case(&format!("microsoft.graph.{name}"))
}

fn not_found(seg: &str) -> ApiError {
    ApiError::new(
        400,
        "BadRequest",
        format!("Resource not found for the segment '{seg}'."),
    )
}

/// Parses the segments after `/users/{id}`.
pub(crate) fn parse(version: &str, rest: &[String]) -> Result<Route, ApiError> {
    let Some(first) = rest.first() else {
        return Err(ApiError::new(
            400,
            "BadRequest",
            "The user resource itself is not emulated.",
        ));
    };
    let mut i = 0;
    let mut chain = None;
    if is(first, "mailFolders") {
        let Some(id) = rest.get(1) else {
            return Ok(Route::Folders(None));
        };
        let mut c = vec![id.clone()];
        i = 2;
        while i + 1 < rest.len() && is(&rest[i], "childFolders") {
            c.push(rest[i + 1].clone());
            i += 2;
        }
        if i == rest.len() {
            return Ok(Route::Folder(c));
        }
        let seg = &rest[i];
        if is(seg, "childFolders") && i + 1 == rest.len() {
            return Ok(Route::Folders(Some(c)));
        }
        if is(seg, "importMime") && i + 1 == rest.len() {
            if version != "beta" {
                return Err(not_found(seg));
            }
            return Ok(Route::ImportMime(c));
        }
        chain = Some(c);
    }
    let seg = &rest[i];
    if !is(seg, "messages") {
        return Err(not_found(seg));
    }
    let Some(id) = rest.get(i + 1) else {
        return Ok(Route::Messages(chain));
    };
    let tail = match &rest[i + 2..] {
        [] => MsgTail::Item,
        [v] if v == "$value" => MsgTail::Value,
        [a] if is(a, "attachments") => MsgTail::Attachments,
        [a, u] if is(a, "attachments") && is(u, "createUploadSession") => MsgTail::UploadSession,
        [a, id] if is(a, "attachments") => MsgTail::Attachment(id.clone()),
        [other, ..] => return Err(not_found(other)),
    };
    Ok(Route::Message {
        folder: chain,
        id: id.clone(),
        tail,
    })
}

fn method_not_allowed(m: &Method) -> ApiError {
    ApiError::new(
        405,
        "BadRequest",
        format!("The HTTP method '{m}' is not supported on this resource."),
    )
}

/// Runs the handler of a parsed route.
pub(crate) fn execute(ctx: &Ctx<'_>, route: Route, call: &Call) -> Result<Reply, ApiError> {
    let m = &call.method;
    match route {
        Route::Folders(parent) => match *m {
            Method::GET => folders::list(ctx, parent.as_deref()),
            Method::POST => folders::create(ctx, parent.as_deref(), call),
            _ => Err(method_not_allowed(m)),
        },
        Route::Folder(chain) => match *m {
            Method::GET => folders::get(ctx, &chain),
            Method::PATCH => folders::update(ctx, &chain, call),
            Method::DELETE => folders::delete(ctx, &chain),
            _ => Err(method_not_allowed(m)),
        },
        Route::Messages(folder) => match *m {
            Method::GET => views::list_messages(ctx, folder.as_deref()),
            Method::POST => messages::create(ctx, folder.as_deref(), call),
            _ => Err(method_not_allowed(m)),
        },
        Route::ImportMime(chain) => match *m {
            Method::POST => messages::import_mime(ctx, &chain, call),
            _ => Err(method_not_allowed(m)),
        },
        Route::Message { folder, id, tail } => {
            let f = folder.as_deref();
            match (tail, m.clone()) {
                (MsgTail::Item, Method::GET) => views::get_message(ctx, f, &id),
                (MsgTail::Item, Method::PATCH) => messages::patch(ctx, f, &id, call),
                (MsgTail::Item, Method::DELETE) => messages::delete(ctx, f, &id),
                (MsgTail::Value, Method::GET) => views::message_value(ctx, f, &id),
                (MsgTail::Attachments, Method::GET) => upload::list_attachments(ctx, f, &id),
                (MsgTail::Attachments, Method::POST) => upload::add_attachment(ctx, f, &id, call),
                (MsgTail::Attachment(a), Method::GET) => upload::get_attachment(ctx, f, &id, &a),
                (MsgTail::Attachment(a), Method::DELETE) => {
                    upload::delete_attachment(ctx, f, &id, &a)
                }
                (MsgTail::UploadSession, Method::POST) => upload::create_session(ctx, f, &id, call),
                _ => Err(method_not_allowed(m)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(version: &str, path: &str) -> Result<Route, ApiError> {
        let segs: Vec<String> = path.split('/').map(str::to_owned).collect();
        parse(version, &segs)
    }

    #[test]
    fn grammar() {
        assert_eq!(p("v1.0", "mailFolders").unwrap(), Route::Folders(None));
        assert_eq!(
            p("v1.0", "MailFolders/inbox").unwrap(),
            Route::Folder(vec!["inbox".into()])
        );
        assert_eq!(
            p("v1.0", "mailFolders/a/childFolders/b/childFolders").unwrap(),
            Route::Folders(Some(vec!["a".into(), "b".into()]))
        );
        assert_eq!(
            p("beta", "mailFolders/a/importMime").unwrap(),
            Route::ImportMime(vec!["a".into()])
        );
        assert_eq!(
            p("v1.0", "mailFolders/a/importMime").unwrap_err().status,
            400
        );
        assert_eq!(
            p("v1.0", "messages/m1/$value").unwrap(),
            Route::Message {
                folder: None,
                id: "m1".into(),
                tail: MsgTail::Value
            }
        );
        assert_eq!(
            p(
                "v1.0",
                "messages/m1/attachments/microsoft.graph.createUploadSession"
            )
            .unwrap(),
            Route::Message {
                folder: None,
                id: "m1".into(),
                tail: MsgTail::UploadSession
            }
        );
        assert_eq!(
            p("v1.0", "mailFolders/inbox/messages").unwrap(),
            Route::Messages(Some(vec!["inbox".into()]))
        );
        assert!(p("v1.0", "calendar").is_err());
        assert!(p("v1.0", "messages/m1/bogus").is_err());
    }
}
