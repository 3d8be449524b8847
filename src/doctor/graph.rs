//! Doctor's Graph checks: the token (AADSTS failures explained), the permissions in it when it
//! is a JWT, then per destination mailbox: access, and one test message per write route in a
//! scratch folder that is deleted afterwards whatever happened in between (the probes themselves
//! are in `routes`).

use super::routes::Probes;
use super::{DoctorReport, MAIL_ADVANCED, MAIL_READWRITE, Status, probe};
use crate::engine::connect::graph_settings;
use crate::plan::{GraphDestination, Mailbox, Plan};
use crate::sink::graph::{GraphApp, GraphError, Route};

/// Checks one Graph destination and its chosen mailboxes.
pub async fn check(
    plan: &Plan,
    g: &GraphDestination,
    mailboxes: &[&Mailbox],
    report: &mut DoctorReport,
) {
    let target = format!("graph {}", g.name);
    // The app writes JSON when asked to write: the importMime probe goes raw (see `probe`).
    let mut settings = graph_settings(g, plan.limits.max_message_bytes);
    settings.route = Route::Json;
    let app = match GraphApp::new(settings) {
        Ok(a) => a,
        Err(e) => {
            report.push(&target, "credential", Status::Fail, e.to_string());
            return;
        }
    };
    let roles = match app.token().await {
        Ok(t) => {
            report.push(
                &target,
                "token",
                Status::Ok,
                format!(
                    "token issued by {} for client {}",
                    app.settings().token_endpoint(),
                    g.client_id
                ),
            );
            probe::token_roles(t.expose())
        }
        Err(e) => {
            report.push(&target, "token", Status::Fail, token_advice(&e));
            return;
        }
    };
    if let Some(roles) = &roles {
        report_roles(&target, roles, g.route, report);
    }
    if mailboxes.is_empty() {
        report.push(
            &target,
            "mailboxes",
            Status::Warn,
            "no mailbox of the plan goes to this destination: nothing to test",
        );
    }
    for mb in mailboxes {
        check_mailbox(&app, g, &mb.destination_user, roles.as_deref(), report).await;
    }
}

fn has(roles: &[String], name: &str) -> bool {
    roles.iter().any(|r| r.eq_ignore_ascii_case(name))
}

fn report_roles(
    target: &str,
    roles: &[String],
    route: crate::sink::graph::Route,
    report: &mut DoctorReport,
) {
    let shown = if roles.is_empty() {
        "none".to_owned()
    } else {
        roles.join(", ")
    };
    if !has(roles, MAIL_READWRITE) {
        report.push(
            target,
            "permissions",
            Status::Fail,
            format!(
                "the token grants {shown}, not {MAIL_READWRITE}: in the app registration add the Microsoft Graph application permission {MAIL_READWRITE} and grant admin consent"
            ),
        );
    } else if !has(roles, MAIL_ADVANCED) {
        let status = if route == crate::sink::graph::Route::ImportMime {
            Status::Fail
        } else {
            Status::Ok
        };
        report.push(
            target,
            "permissions",
            status,
            format!(
                "the token grants {shown}; without {MAIL_ADVANCED} importMime is refused and every message goes by the JSON route"
            ),
        );
    } else {
        report.push(
            target,
            "permissions",
            Status::Ok,
            format!("the token grants {shown}"),
        );
    }
}

/// The token failure with what to do; `GraphError::Auth` already names the AADSTS code and
/// explains it.
fn token_advice(e: &GraphError) -> String {
    match e {
        GraphError::Auth { .. } => e.to_string(),
        GraphError::Unreachable { .. } => format!(
            "{e}: check login_url/cloud and that this machine reaches the login host (proxy, firewall)"
        ),
        other => other.to_string(),
    }
}

/// The advice for a failed access check.
fn access_advice(e: &GraphError, user: &str, roles: Option<&[String]>) -> String {
    let GraphError::Http(h) = e else {
        return e.to_string();
    };
    let code = h.code.as_deref().unwrap_or("");
    let message = h.message.as_deref().unwrap_or("");
    let request = h
        .request_id
        .as_deref()
        .map(|r| format!(" [request-id {r}]"))
        .unwrap_or_default();
    match (h.status, code) {
        (403, _) => {
            // Exchange says "Access to OData is disabled" when an application access policy (or
            // RBAC for applications) keeps the app out; a missing permission is a plain denial.
            let policy = message.contains("OData is disabled")
                || roles.is_some_and(|r| has(r, MAIL_READWRITE));
            if policy {
                format!(
                    "HTTP 403 {code}: an application access policy (or Exchange RBAC for applications) keeps this app out of {user}: add the mailbox to the policy's mail-enabled security group (check with Test-ApplicationAccessPolicy -Identity {user} -AppId <client id>); changes can take an hour{request}"
                )
            } else {
                format!(
                    "HTTP 403 {code}: the app may not read mail: add the Microsoft Graph application permission {MAIL_READWRITE} to the app registration and grant admin consent{request}"
                )
            }
        }
        (404, "MailboxNotEnabledForRESTAPI") => format!(
            "HTTP 404 {code}: {user} has no Exchange Online mailbox Graph can reach: assign an Exchange Online licence (and wait for provisioning), or move an on-premises mailbox to the cloud first; inactive mailboxes cannot be written{request}"
        ),
        (404, _) => format!(
            "HTTP 404 {code}: no user {user} in this tenant: check the CSV's EmailAddress/DestinationUser (the UPN or primary SMTP address){request}"
        ),
        (401, _) => format!(
            "HTTP 401 {code}: Graph refused the token: check `cloud` (tokens do not cross clouds) and graph_url{request}"
        ),
        _ => e.to_string(),
    }
}

async fn check_mailbox(
    app: &GraphApp,
    g: &GraphDestination,
    user: &str,
    roles: Option<&[String]>,
    report: &mut DoctorReport,
) {
    let target = format!("graph {} {user}", g.name);
    let mailbox = app.mailbox(user);
    if let Err(e) = mailbox.check_access().await {
        report.push(
            &target,
            "access",
            Status::Fail,
            access_advice(&e, user, roles),
        );
        return;
    }
    report.push(
        &target,
        "access",
        Status::Ok,
        "the app can open this mailbox",
    );

    let token = format!("{:08x}", rand::random::<u32>());
    let name = format!("mailferry-doctor-{token}");
    let folder_id = match mailbox
        .ensure_folder(None, std::slice::from_ref(&name))
        .await
    {
        Ok(id) => id,
        Err(e) => {
            report.push(
                &target,
                "scratch folder",
                Status::Fail,
                format!("cannot create the folder {name}: {e}"),
            );
            return;
        }
    };
    report.push(
        &target,
        "scratch folder",
        Status::Ok,
        format!("created {name} (deleted at the end)"),
    );
    // The probes never return early from here: the folder is deleted whatever they found.
    let probes = Probes {
        app,
        mailbox: &mailbox,
        http: probe::client(),
        target: &target,
        user,
        folder_id: &folder_id,
        token: &token,
    };
    probes.import_mime(g, report).await;
    probes.json(report).await;
    probes.folder_rules(report).await;
    match mailbox.delete_folder(&folder_id).await {
        Ok(()) => report.push(
            &target,
            "cleanup",
            Status::Ok,
            format!("deleted {name} and its test messages"),
        ),
        Err(e) => report.push(
            &target,
            "cleanup",
            Status::Fail,
            format!("could not delete the scratch folder {name}: {e}; delete it by hand"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::graph::HttpFailure;

    fn denied(message: &str) -> GraphError {
        GraphError::Http(Box::new(HttpFailure {
            op: "check mailbox access".into(),
            mailbox: "ann@contoso.com".into(),
            status: 403,
            code: Some("ErrorAccessDenied".into()),
            message: Some(message.into()),
            hint: None,
            request_id: Some("r-1".into()),
            client_request_id: "c-1".into(),
            attempts: 1,
        }))
    }

    #[test]
    fn a_403_is_told_apart_by_exchange_message_or_by_the_token_roles() {
        let policy = access_advice(
            &denied("Access to OData is disabled."),
            "ann@contoso.com",
            None,
        );
        assert!(policy.contains("application access policy"), "{policy}");
        assert!(policy.contains("r-1"), "{policy}");
        let perm = access_advice(
            &denied("Access is denied. Check credentials and try again."),
            "ann@contoso.com",
            None,
        );
        assert!(
            perm.contains("Mail.ReadWrite") && !perm.contains("policy"),
            "{perm}"
        );
        // With Mail.ReadWrite in the token, a plain denial can only be the policy.
        let roles = vec![MAIL_READWRITE.to_owned()];
        let by_roles = access_advice(
            &denied("Access is denied. Check credentials and try again."),
            "ann@contoso.com",
            Some(&roles),
        );
        assert!(by_roles.contains("application access policy"), "{by_roles}");
    }

    #[test]
    fn token_roles_decide_the_permission_check() {
        let mut r = DoctorReport::default();
        report_roles(
            "graph exo",
            &["Mail.Read".into()],
            crate::sink::graph::Route::Json,
            &mut r,
        );
        report_roles(
            "graph exo",
            &[MAIL_READWRITE.into()],
            crate::sink::graph::Route::ImportMime,
            &mut r,
        );
        report_roles(
            "graph exo",
            &[MAIL_READWRITE.into()],
            crate::sink::graph::Route::Json,
            &mut r,
        );
        report_roles(
            "graph exo",
            &[MAIL_READWRITE.into(), MAIL_ADVANCED.into()],
            crate::sink::graph::Route::ImportMime,
            &mut r,
        );
        let s: Vec<Status> = r.checks.iter().map(|c| c.status).collect();
        assert_eq!(s, [Status::Fail, Status::Fail, Status::Ok, Status::Ok]);
        assert!(r.checks[0].message.contains("admin consent"));
        assert!(r.checks[1].message.contains(MAIL_ADVANCED));
    }
}
