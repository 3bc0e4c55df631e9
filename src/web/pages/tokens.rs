//! The API tokens page: a user's tokens, making one (shown once), revoking one.

use tera::Context;

use super::layout::{context, redirect, render};
use crate::model::{principal, Error};
use crate::store::principals;
use crate::web::cgi::Response;
use crate::web::context::Ctx;
use crate::web::error::HttpError;

fn tokens_page(ctx: &mut Ctx<'_>, status: u16, extra: impl FnOnce(&mut Context)) -> Result<Response, HttpError> {
    let scope = ctx.viewer().scope().map(String::from);
    let list = principals::list_tokens(ctx.db()?, scope.as_deref())?;
    let mut c = context(ctx, "API tokens", "tokens");
    c.insert("tokens", &list);
    c.insert("label", "");
    c.insert("label_error", &None::<String>);
    c.insert("new_token", &None::<String>);
    extra(&mut c);
    render(status, "tokens.html", &c)
}

pub fn list(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    tokens_page(ctx, 200, |_| {})
}

pub fn create(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let label = ctx.req.form().get("label").unwrap_or("").trim().to_string();
    if let Err(Error::Invalid { problems, .. }) = principal::check_label(&label) {
        return tokens_page(ctx, 422, |c| {
            c.insert("label", &label);
            c.insert("label_error", &problems[0].message);
        });
    }
    let user = ctx.user().to_string();
    let created = ctx.write(|db| principals::create_token(db, Some(&user), &label))?;
    tokens_page(ctx, 200, |c| c.insert("new_token", &created.token))
}

pub fn revoke(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let id = ctx.param().to_string();
    let scope = ctx.viewer().scope().map(String::from);
    ctx.write(|db| principals::revoke_token(db, &id, scope.as_deref()))?;
    redirect(ctx, "/tokens?notice=revoked")
}
