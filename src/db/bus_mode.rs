//! The delivery mode a worker last started in (`core` or `durable`), kept in
//! `webhook_meta`, so durable mode re-enabled after core mode does not replay what
//! core mode delivered.

use chrono::{SubsecRound, Utc};
use entity::meta;
use sea_orm::{sea_query::OnConflict, DatabaseConnection, DbErr, EntityTrait, Set};

const KEY: &str = "bus_mode";

/// The mode of the previous start, if one was recorded.
pub async fn previous(db: &DatabaseConnection) -> Result<Option<String>, DbErr> {
    Ok(meta::Entity::find_by_id(KEY.to_owned())
        .one(db)
        .await?
        .map(|m| m.value))
}

/// Remember the mode of this start.
pub async fn record(db: &DatabaseConnection, mode: &str) -> Result<(), DbErr> {
    let row = meta::ActiveModel {
        key: Set(KEY.to_owned()),
        value: Set(mode.to_owned()),
        updated_at: Set(Utc::now().trunc_subsecs(6)),
    };
    meta::Entity::insert(row)
        .on_conflict(
            OnConflict::column(meta::Column::Key)
                .update_columns([meta::Column::Value, meta::Column::UpdatedAt])
                .to_owned(),
        )
        .exec(db)
        .await?;
    Ok(())
}
