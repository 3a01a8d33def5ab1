//! "Did you mean ...?" hints for unknown names.

use datafusion::common::utils::datafusion_strsim::levenshtein;
use quiver_catalog::{Catalog, TableDef};
use quiver_common::NamespaceId;

use crate::error::QueryError;

/// ` (did you mean x?)` for the candidate closest to `name`, if one is
/// close enough to be a likely typo; otherwise empty.
pub(crate) fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> String {
    let limit = (name.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .filter(|c| *c != name)
        .map(|c| (levenshtein(name, c), c))
        .filter(|(distance, _)| *distance <= limit)
        .min()
        .map(|(_, c)| format!(" (did you mean {c}?)"))
        .unwrap_or_default()
}

/// `table not found: ns.t`, suggesting the closest table or view of the
/// namespace.
pub(crate) fn table_not_found(
    catalog: &Catalog,
    namespace: &NamespaceId,
    table: &str,
) -> QueryError {
    let tables: Vec<String> = catalog
        .registry()
        .tables_in(namespace)
        .iter()
        .map(|t| t.def().name.to_string())
        .chain(
            catalog
                .views_in(namespace)
                .iter()
                .map(|v| v.name.to_string()),
        )
        .collect();
    let hint = did_you_mean(table, tables.iter().map(String::as_str));
    let hint = hint.replace("mean ", &format!("mean {namespace}."));
    QueryError::TableNotFound {
        name: format!("{namespace}.{table}"),
        hint,
    }
}

/// `namespace not found: ns`, suggesting the closest namespace.
pub(crate) fn namespace_not_found(catalog: &Catalog, namespace: &str) -> QueryError {
    let names: Vec<String> = catalog
        .namespaces()
        .into_iter()
        .map(|n| n.name.to_string())
        .collect();
    let hint = did_you_mean(namespace, names.iter().map(String::as_str));
    QueryError::NamespaceNotFound {
        name: namespace.to_string(),
        hint,
    }
}

/// `column not found: c in ns.t`, suggesting the closest column.
pub(crate) fn column_not_found(def: &TableDef, column: &str) -> String {
    let hint = did_you_mean(column, def.columns.iter().map(|c| c.name.as_str()));
    format!(
        "column not found: {column} in {}{hint}",
        def.qualified_name()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_only_close_names() {
        assert_eq!(
            did_you_mean("ordrs", ["orders", "users"]),
            " (did you mean orders?)"
        );
        assert_eq!(did_you_mean("x", ["orders", "users"]), "");
        assert_eq!(
            did_you_mean("customer_nmae", ["customer_name", "id"]),
            " (did you mean customer_name?)"
        );
    }
}
