//! PLACEHOLDER (lead's compile shim; the filter engineer replaces this whole file).
//! Supports only `attr eq "value"` for userName/externalId/displayName/id.
use crate::error::ScimError;
use crate::filter::Filter;
use crate::schema::ResourceType;
use crate::sql::SqlValue;
pub fn where_sql(
    f: &Filter,
    _rt: Option<ResourceType>,
    params: &mut Vec<SqlValue>,
) -> Result<String, ScimError> {
    let parts: Vec<&str> = f.text().splitn(3, ' ').collect();
    if parts.len() != 3 || !parts[1].eq_ignore_ascii_case("eq") {
        return Err(ScimError::invalid_filter("unsupported filter"));
    }
    let v: String =
        serde_json::from_str(parts[2]).map_err(|_| ScimError::invalid_filter("bad value"))?;
    let col = match parts[0].to_ascii_lowercase().as_str() {
        "username" => "r.user_name = ? COLLATE NOCASE",
        "externalid" => "r.external_id = ?",
        "displayname" => "r.display_name = ? COLLATE NOCASE",
        "id" => "r.id = ?",
        _ => return Err(ScimError::invalid_filter("unsupported attribute")),
    };
    params.push(SqlValue::Text(v));
    Ok(col.to_string())
}
pub fn sort_sql(_s: &str, _rt: Option<ResourceType>) -> Result<String, ScimError> {
    Ok("r.rowid".into())
}
