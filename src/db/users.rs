//! `users` repository.

use entity::user::{ActiveModel, Column, Entity, Model};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    Set,
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
    }
    .insert(db)
    .await
}

/// Returns whether the user exists.
pub async fn set_password_hash(
    db: &DatabaseConnection,
    username: &str,
    password_hash: String,
) -> Result<bool, DbErr> {
    let res = Entity::update_many()
        .col_expr(
            Column::PasswordHash,
            sea_orm::sea_query::Expr::value(password_hash),
        )
        .filter(Column::Username.eq(username))
        .exec(db)
        .await?;
    Ok(res.rows_affected > 0)
}
