//! `GET /v1/prompts`: the prompt templates this server has, with their
//! descriptions, so a chat UI can offer them.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::state::AppState;

pub async fn list(State(app): State<AppState>) -> Json<Value> {
    let data: Vec<Value> = app
        .templates
        .list()
        .into_iter()
        .map(|(name, meta)| {
            let mut entry = json!({ "name": name, "description": meta.description });
            if let Some(model) = meta.model {
                entry["model"] = json!(model);
            }
            entry
        })
        .collect();
    Json(json!({ "object": "list", "data": data }))
}
