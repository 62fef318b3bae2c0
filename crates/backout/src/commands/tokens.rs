//! `backout token create|list|revoke`: the bearer tokens of `backout serve`. A token is printed
//! once, when it is created; the store keeps only a digest of its secret. Creating and revoking
//! are journaled (who, for whom, which role), so the audit trail says who could act.

use backout_store::{Role, Token};

use crate::cli::{LintFormat, TokenArgs, TokenCommand, TokenRole};
use crate::commands::context::Context;
use crate::exit_codes::{CommandError, ExitCode};
use crate::output;
use backout_core::time::utc;

pub fn run(args: &TokenArgs, ctx: &Context) -> Result<ExitCode, CommandError> {
    match &args.command {
        TokenCommand::Create { user, role, format } => create(user, role_of(*role), *format, ctx),
        TokenCommand::List { format } => list(*format, ctx),
        TokenCommand::Revoke { id } => revoke(id, ctx),
    }
}

fn role_of(role: TokenRole) -> Role {
    match role {
        TokenRole::Viewer => Role::Viewer,
        TokenRole::Performer => Role::Performer,
        TokenRole::Decider => Role::Decider,
        TokenRole::Admin => Role::Admin,
    }
}

fn create(
    user: &str,
    role: Role,
    format: LintFormat,
    ctx: &Context,
) -> Result<ExitCode, CommandError> {
    ctx.runtime()?.block_on(async {
        let store = ctx.open_store().await?;
        let issued = backout_server::auth::create(store.as_ref(), user, role, &ctx.actor(), ctx.now())
            .await
            .map_err(|e| match e {
                backout_server::auth::CreateError::Store(e) => CommandError::from(e),
                backout_server::auth::CreateError::NoUser => CommandError::usage(e.to_string()),
                other => CommandError::internal(other.to_string()),
            })?;
        eprintln!(
            "token {} for `{}` with role `{role}` created. It is shown only this once: store it now \
             (the server keeps only a digest). Use it as `Authorization: Bearer <token>`.",
            issued.record.id, issued.record.user
        );
        if format == LintFormat::Json {
            let answer = serde_json::json!({
                "id": issued.record.id,
                "user": issued.record.user,
                "role": role.to_string(),
                "token": issued.bearer,
            });
            output::out(&format!("{answer}\n"));
        } else {
            output::out(&format!("{}\n", issued.bearer));
        }
        Ok(ExitCode::Ok)
    })
}

fn list(format: LintFormat, ctx: &Context) -> Result<ExitCode, CommandError> {
    ctx.runtime()?.block_on(async {
        let store = ctx.open_store().await?;
        let tokens = store.list_tokens().await?;
        if format == LintFormat::Json {
            output::out(&format!("{}\n", output::json(&tokens)?));
            return Ok(ExitCode::Ok);
        }
        if tokens.is_empty() {
            output::out(
                "no tokens yet; create one with `backout token create --user U --role R`\n",
            );
            return Ok(ExitCode::Ok);
        }
        output::out(&format!(
            "{:<24} {:<28} {:<10} {:<21} {:<14} state\n",
            "id", "user", "role", "created", "by"
        ));
        for token in &tokens {
            output::out(&line(token));
        }
        Ok(ExitCode::Ok)
    })
}

fn line(token: &Token) -> String {
    let state = match (token.revoked_at_ms, &token.revoked_by) {
        (Some(at), Some(by)) => format!("revoked {} by {by}", utc(at)),
        (Some(at), None) => format!("revoked {}", utc(at)),
        _ => "active".to_string(),
    };
    format!(
        "{:<24} {:<28} {:<10} {:<21} {:<14} {state}\n",
        token.id,
        token.user,
        token.role.as_str(),
        utc(token.created_at_ms),
        token.created_by
    )
}

fn revoke(id: &str, ctx: &Context) -> Result<ExitCode, CommandError> {
    ctx.runtime()?.block_on(async {
        let store = ctx.open_store().await?;
        match backout_server::auth::revoke(store.as_ref(), id, &ctx.actor(), ctx.now()).await {
            Ok(token) => {
                eprintln!(
                    "token {} of `{}` ({}) revoked; it authenticates nobody from now on",
                    token.id, token.user, token.role
                );
                Ok(ExitCode::Ok)
            }
            Err(backout_store::StoreError::Invalid { reason }) => {
                Err(CommandError::refused(reason))
            }
            Err(e) => Err(e.into()),
        }
    })
}
