//! `users` repository.

use entity::user::{ActiveModel, Column, Entity, Model};
use sea_orm::{
    sea_query::{Expr, ExprTrait},
    ActiveModelTrait, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, Set,
};

pub async fn find_by_username(
    db: &DatabaseConnection,
    username: &str,
) -> Result<Option<Model>, DbErr> {
    Entity::find()
        .filter(Column::Username.eq(username))
        .one(db)
        .await
}

pub async fn get(db: &DatabaseConnection, uuid: &str) -> Result<Option<Model>, DbErr> {
    Entity::find_by_id(uuid.to_owned()).one(db).await
}

pub async fn list(db: &DatabaseConnection) -> Result<Vec<Model>, DbErr> {
    Entity::find()
        .order_by_asc(Column::CreatedAt)
        .order_by_asc(Column::Username)
        .all(db)
        .await
}

pub async fn insert(
    db: &DatabaseConnection,
    username: &str,
    password_hash: String,
    role: &str,
) -> Result<Model, DbErr> {
    ActiveModel {
        uuid: Set(uuid::Uuid::new_v4().to_string()),
        username: Set(username.to_owned()),
        password_hash: Set(password_hash),
        role: Set(role.to_owned()),
        created_at: Set(chrono::Utc::now()),
        token_version: Set(0),
        disabled: Set(false),
    }
    .insert(db)
    .await
}

/// Set the password and revoke every token issued before. Returns whether the user exists.
pub async fn set_password_hash(
    db: &DatabaseConnection,
    username: &str,
    password_hash: String,
) -> Result<bool, DbErr> {
    update_revoking(
        db,
        username,
        Column::PasswordHash,
        Expr::value(password_hash),
    )
    .await
}

/// Disable or enable a user, revoking every token issued before. Returns whether the user exists.
pub async fn set_disabled(
    db: &DatabaseConnection,
    username: &str,
    disabled: bool,
) -> Result<bool, DbErr> {
    update_revoking(db, username, Column::Disabled, Expr::value(disabled)).await
}

/// Change a user's role, revoking every token issued before. Returns whether the user exists.
pub async fn set_role(db: &DatabaseConnection, username: &str, role: &str) -> Result<bool, DbErr> {
    update_revoking(db, username, Column::Role, Expr::value(role)).await
}

/// Revoke every token of the user `uuid` (sign out). Returns whether the user exists.
pub async fn revoke_tokens(db: &DatabaseConnection, uuid: &str) -> Result<bool, DbErr> {
    let res = Entity::update_many()
        .col_expr(Column::TokenVersion, next_version())
        .filter(Column::Uuid.eq(uuid))
        .exec(db)
        .await?;
    Ok(res.rows_affected > 0)
}

/// Returns whether the user existed.
pub async fn delete(db: &DatabaseConnection, username: &str) -> Result<bool, DbErr> {
    let res = Entity::delete_many()
        .filter(Column::Username.eq(username))
        .exec(db)
        .await?;
    Ok(res.rows_affected > 0)
}

/// Whether `user` is the only enabled admin, whom removing would leave nobody able to
/// manage subscriptions.
pub async fn is_last_enabled_admin(db: &DatabaseConnection, user: &Model) -> Result<bool, DbErr> {
    if user.disabled || user.role != "admin" {
        return Ok(false);
    }
    let others = Entity::find()
        .filter(Column::Role.eq("admin"))
        .filter(Column::Disabled.eq(false))
        .filter(Column::Uuid.ne(user.uuid.as_str()))
        .count(db)
        .await?;
    Ok(others == 0)
}

/// One statement, so the change and the revocation cannot come apart.
async fn update_revoking(
    db: &DatabaseConnection,
    username: &str,
    column: Column,
    value: Expr,
) -> Result<bool, DbErr> {
    let res = Entity::update_many()
        .col_expr(column, value)
        .col_expr(Column::TokenVersion, next_version())
        .filter(Column::Username.eq(username))
        .exec(db)
        .await?;
    Ok(res.rows_affected > 0)
}

fn next_version() -> Expr {
    Expr::col(Column::TokenVersion).add(1)
}

/// Whether any user exists: the page and `serve` tell a first run how to make one.
pub async fn any_exists(db: &DatabaseConnection) -> Result<bool, DbErr> {
    Ok(Entity::find().count(db).await? > 0)
}
