//! What the target advertises in `/ServiceProviderConfig` (RFC 7644 §5, RFC 9865 §4) and
//! the load generator adapts to: Bulk limits and page sizes.

use crate::client::Conn;
use serde_json::Value;

/// Bulk limits (RFC 7643 §5 `bulk`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkLimits {
    /// `maxOperations`.
    pub max_operations: usize,
    /// `maxPayloadSize`, in bytes.
    pub max_payload_size: usize,
}

/// The parts of a ServiceProviderConfig the load generator uses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceConfig {
    /// Bulk limits, when Bulk is supported.
    pub bulk: Option<BulkLimits>,
    /// Whether cursor paging is advertised (`None`: the server predates RFC 9865 and says
    /// nothing).
    pub cursor: Option<bool>,
    /// The largest page (`pagination.maxPageSize`, else `filter.maxResults`).
    pub max_page_size: Option<u64>,
}

fn as_usize(v: &Value) -> Option<usize> {
    // Some servers send numbers as strings.
    match v {
        Value::Number(n) => n.as_u64().and_then(|n| usize::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

impl ServiceConfig {
    /// Reads a ServiceProviderConfig document. Missing or malformed parts are left unknown.
    pub fn from_json(spc: &Value) -> ServiceConfig {
        let bulk = &spc["bulk"];
        let bulk = match (
            as_bool(&bulk["supported"]),
            as_usize(&bulk["maxOperations"]),
            as_usize(&bulk["maxPayloadSize"]),
        ) {
            (Some(true), Some(ops), Some(size)) if ops > 0 && size > 0 => Some(BulkLimits {
                max_operations: ops,
                max_payload_size: size,
            }),
            _ => None,
        };
        let pagination = &spc["pagination"];
        let max_page_size = as_usize(&pagination["maxPageSize"])
            .or_else(|| as_usize(&spc["filter"]["maxResults"]))
            .filter(|n| *n > 0)
            .map(|n| n as u64);
        ServiceConfig {
            bulk,
            cursor: as_bool(&pagination["cursor"]),
            max_page_size,
        }
    }

    /// Fetches and reads `/ServiceProviderConfig`.
    pub async fn fetch(conn: &mut Conn) -> anyhow::Result<ServiceConfig> {
        let spc = conn.get_json("/ServiceProviderConfig").await?;
        Ok(ServiceConfig::from_json(&spc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bulk_limits_and_pagination_are_read_from_the_document() {
        let c = ServiceConfig::from_json(&json!({
            "bulk": {"supported": true, "maxOperations": 1000, "maxPayloadSize": 1048576},
            "filter": {"supported": true, "maxResults": 200},
            "pagination": {"cursor": true, "index": true, "maxPageSize": 1000}
        }));
        assert_eq!(
            c.bulk,
            Some(BulkLimits {
                max_operations: 1000,
                max_payload_size: 1_048_576
            })
        );
        assert_eq!(c.cursor, Some(true));
        assert_eq!(c.max_page_size, Some(1000));
    }

    #[test]
    fn unsupported_or_unbounded_bulk_is_no_bulk() {
        let off = ServiceConfig::from_json(&json!({
            "bulk": {"supported": false, "maxOperations": 10, "maxPayloadSize": 10}
        }));
        assert_eq!(off.bulk, None);
        let zero = ServiceConfig::from_json(&json!({
            "bulk": {"supported": true, "maxOperations": 0, "maxPayloadSize": 10}
        }));
        assert_eq!(zero.bulk, None);
        assert_eq!(
            ServiceConfig::from_json(&json!({})),
            ServiceConfig::default()
        );
    }

    #[test]
    fn stringly_typed_documents_are_understood() {
        let c = ServiceConfig::from_json(&json!({
            "bulk": {"supported": "true", "maxOperations": "50", "maxPayloadSize": "4096"},
            "filter": {"maxResults": "100"}
        }));
        assert_eq!(c.bulk.map(|b| b.max_operations), Some(50));
        assert_eq!(c.max_page_size, Some(100));
        assert_eq!(c.cursor, None);
    }
}
