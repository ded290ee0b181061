//! The hook pipeline inside `Service`: what each phase sees and what reaches the store, over the
//! memory backend.

#![allow(clippy::unwrap_used)]

use async_trait::async_trait;
use scimd_backend_memory::MemoryBackend;
use scimd_core::error::ScimError;
use scimd_core::hooks::{
    Hook, HookContext, HookPipeline, Operation, Phase, ReactError, RequestInfo, WriteRecord,
};
use scimd_core::paging::PagingConfig;
use scimd_core::resource::Resource;
use scimd_core::schema::ResourceKind;
use scimd_core::service::{Precondition, ProjectionParams, Service};
use scimd_core::{SchemaRegistry, Version};
use scimd_plugin_host::{HookConfig, HookEnv, build_pipeline};
use serde_json::{Map, Value, json};
use std::path::Path;
use std::sync::{Arc, Mutex};

const BASE: &str = "https://h/scim/s/v2";
const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const NONE: ProjectionParams<'static> = ProjectionParams {
    attributes: None,
    excluded_attributes: None,
};

/// Vetoes writes of users whose userName starts with "evil", records every react call.
#[derive(Debug, Default)]
struct Recorder {
    records: Mutex<Vec<WriteRecord>>,
    deny_deletes: bool,
    react_only: bool,
}

#[async_trait]
impl Hook for Recorder {
    fn name(&self) -> &str {
        "recorder"
    }
    fn applies(&self, phase: Phase, _: ResourceKind, op: Operation) -> bool {
        match phase {
            Phase::Map => false,
            Phase::Decide => !self.react_only && (op != Operation::Delete || self.deny_deletes),
            Phase::Outbox => false,
            Phase::React => true,
        }
    }
    async fn decide(
        &self,
        cx: &HookContext,
        _: Option<&Resource>,
        attrs: Option<&mut Map<String, Value>>,
    ) -> Result<(), ScimError> {
        match attrs {
            None if self.deny_deletes => Err(ScimError::new(403, "deletes are disabled")),
            Some(a)
                if a.get("userName")
                    .and_then(Value::as_str)
                    .is_some_and(|n| n.starts_with("evil")) =>
            {
                Err(ScimError::invalid_value(format!(
                    "{} refuses evil",
                    cx.source
                )))
            }
            _ => Ok(()),
        }
    }
    async fn react(&self, record: &WriteRecord) -> Result<(), ReactError> {
        self.records.lock().unwrap().push(record.clone());
        Ok(())
    }
}

fn service(hooks: Vec<HookConfig>, recorder: Arc<Recorder>) -> Service {
    let backend = Arc::new(MemoryBackend::default());
    let env = HookEnv {
        source: "s",
        config_dir: Path::new("."),
        state: Arc::new(scimd_core::state::MemoryStateStore::default()),
    };
    let built = build_pipeline(&hooks, &env).unwrap();
    let mut all: Vec<Arc<dyn Hook>> = built.hooks().to_vec();
    all.push(recorder);
    Service::new(
        "s",
        backend,
        Arc::new(SchemaRegistry::new()),
        PagingConfig::default(),
    )
    .with_hooks(HookPipeline::new(all))
}

fn mapping() -> Vec<HookConfig> {
    serde_json::from_value(json!([{
        "type": "attribute_map",
        "rules": [
            {"action": "default", "attribute": "userName", "template": "{emails[primary].value}",
             "resource_types": ["User"]},
            {"action": "lowercase", "attribute": "userName", "resource_types": ["User"]},
            {"action": "set", "attribute": "displayName", "template": "{displayName} (synced)",
             "resource_types": ["Group"], "operations": ["patch"]}
        ]
    }]))
    .unwrap()
}

async fn count(svc: &Service, kind: ResourceKind) -> u64 {
    svc.list(BASE, kind, &Default::default()).await.unwrap()["totalResults"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn mapping_supplies_a_required_user_name_on_create_and_applies_on_put_and_patch() {
    let rec = Arc::new(Recorder::default());
    let svc = service(mapping(), rec.clone());
    let created = svc
        .create(
            BASE,
            ResourceKind::User,
            &json!({"schemas": [USER], "emails": [{"value": "Ada@Example.COM", "primary": true}]}),
            NONE,
        )
        .await
        .unwrap();
    assert_eq!(created.body["userName"], "ada@example.com");
    let id = created.id;
    let put = svc
        .replace(
            BASE,
            ResourceKind::User,
            &id,
            &json!({"schemas": [USER], "userName": "ADA.L"}),
            &Precondition::None,
            NONE,
        )
        .await
        .unwrap();
    assert_eq!(put.body["userName"], "ada.l");
    svc.patch(
        BASE,
        ResourceKind::User,
        &id,
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "userName", "value": "LOVELACE"}]}),
        &Precondition::None,
        NONE,
    )
    .await
    .unwrap();
    let stored = svc.get(BASE, ResourceKind::User, &id, NONE).await.unwrap();
    assert_eq!(stored.body["userName"], "lovelace");
    assert_eq!(stored.version, Version(3));
}

#[tokio::test]
async fn a_mapping_that_produces_an_invalid_value_fails_validation_and_writes_nothing() {
    let hooks: Vec<HookConfig> = serde_json::from_value(json!([{
        "type": "attribute_map",
        "rules": [{"action": "set", "attribute": "active", "value": "yes"}]
    }]))
    .unwrap();
    let svc = service(hooks, Arc::default());
    let e = svc
        .create(
            BASE,
            ResourceKind::User,
            &json!({"schemas": [USER], "userName": "a"}),
            NONE,
        )
        .await
        .unwrap_err();
    assert_eq!(e.status, 400);
    assert_eq!(count(&svc, ResourceKind::User).await, 0);
}

#[tokio::test]
async fn a_veto_returns_the_hooks_error_and_writes_nothing() {
    let rec = Arc::new(Recorder::default());
    let svc = service(vec![], rec.clone());
    let e = svc
        .create(
            BASE,
            ResourceKind::User,
            &json!({"schemas": [USER], "userName": "evil1"}),
            NONE,
        )
        .await
        .unwrap_err();
    assert_eq!((e.status, e.detail.as_str()), (400, "s refuses evil"));
    assert_eq!(count(&svc, ResourceKind::User).await, 0);
    let ok = svc
        .create(
            BASE,
            ResourceKind::User,
            &json!({"schemas": [USER], "userName": "good"}),
            NONE,
        )
        .await
        .unwrap();
    let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "userName", "value": "evil2"}]});
    let e = svc
        .patch(
            BASE,
            ResourceKind::User,
            &ok.id,
            &patch,
            &Precondition::None,
            NONE,
        )
        .await
        .unwrap_err();
    assert_eq!(e.status, 400);
    let put = json!({"schemas": [USER], "userName": "evil3"});
    assert!(
        svc.replace(
            BASE,
            ResourceKind::User,
            &ok.id,
            &put,
            &Precondition::None,
            NONE
        )
        .await
        .is_err()
    );
    let stored = svc
        .get(BASE, ResourceKind::User, &ok.id, NONE)
        .await
        .unwrap();
    assert_eq!(
        (stored.body["userName"].clone(), stored.version),
        (json!("good"), Version(1))
    );
    // Only the successful create reached the react phase.
    assert_eq!(rec.records.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_vetoed_delete_keeps_the_resource() {
    let rec = Arc::new(Recorder {
        deny_deletes: true,
        ..Default::default()
    });
    let svc = service(vec![], rec);
    let u = svc
        .create(
            BASE,
            ResourceKind::User,
            &json!({"schemas": [USER], "userName": "keep"}),
            NONE,
        )
        .await
        .unwrap();
    let e = svc
        .delete(ResourceKind::User, &u.id, &Precondition::None)
        .await
        .unwrap_err();
    assert_eq!(e.status, 403);
    assert!(svc.get(BASE, ResourceKind::User, &u.id, NONE).await.is_ok());
}

#[tokio::test]
async fn react_hooks_see_old_and_new_state_the_patch_and_who_sent_it() {
    let rec = Arc::new(Recorder::default());
    let svc = service(mapping(), rec.clone()).for_request(RequestInfo {
        token_name: Some("okta".into()),
        request_id: Some("req-1".into()),
    });
    let u = svc
        .create(
            BASE,
            ResourceKind::User,
            &json!({"schemas": [USER], "userName": "m1"}),
            NONE,
        )
        .await
        .unwrap();
    let g = svc
        .create(
            BASE,
            ResourceKind::Group,
            &json!({"schemas": [GROUP], "displayName": "Team"}),
            NONE,
        )
        .await
        .unwrap();
    let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "add", "path": "members", "value": [{"value": u.id}]}]});
    svc.patch(
        BASE,
        ResourceKind::Group,
        &g.id,
        &patch,
        &Precondition::None,
        NONE,
    )
    .await
    .unwrap();
    svc.delete(ResourceKind::User, &u.id, &Precondition::None)
        .await
        .unwrap();
    let records = rec.records.lock().unwrap().clone();
    let ops: Vec<_> = records
        .iter()
        .map(|r| (r.context.operation, r.context.kind))
        .collect();
    assert_eq!(
        ops,
        [
            (Operation::Create, ResourceKind::User),
            (Operation::Create, ResourceKind::Group),
            (Operation::Patch, ResourceKind::Group),
            (Operation::Delete, ResourceKind::User),
        ]
    );
    let created = &records[0];
    assert!(created.old.is_none());
    assert_eq!(created.context.id.as_deref(), Some(u.id.as_str()));
    assert_eq!(created.context.token_name.as_deref(), Some("okta"));
    assert_eq!(created.context.request_id.as_deref(), Some("req-1"));
    let patched = &records[2];
    let old = patched.old.as_ref().unwrap();
    let new = patched.new.as_ref().unwrap();
    assert!(old.attrs.get("members").is_none());
    assert_eq!(new.attrs["members"][0]["value"], json!(u.id));
    // The Group patch went through the map phase (the rule is scoped to Group patches).
    assert_eq!(new.attrs["displayName"], "Team (synced)");
    assert_eq!(new.meta.version, old.meta.version.next());
    assert_eq!(patched.patch.as_ref(), Some(&patch));
    let deleted = &records[3];
    assert_eq!(deleted.old.as_ref().unwrap().attrs["userName"], "m1");
    assert!(deleted.new.is_none());
}

#[tokio::test]
async fn a_react_only_pipeline_keeps_the_backend_patch_and_sees_exact_old_state() {
    let rec = Arc::new(Recorder {
        react_only: true,
        ..Default::default()
    });
    let svc = service(vec![], rec.clone());
    let g = svc
        .create(
            BASE,
            ResourceKind::Group,
            &json!({"schemas": [GROUP], "displayName": "Before"}),
            NONE,
        )
        .await
        .unwrap();
    let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "displayName", "value": "After"}]});
    svc.patch(
        BASE,
        ResourceKind::Group,
        &g.id,
        &patch,
        &Precondition::None,
        NONE,
    )
    .await
    .unwrap();
    // A patch that changes nothing is no write: nothing to react to.
    svc.patch(
        BASE,
        ResourceKind::Group,
        &g.id,
        &patch,
        &Precondition::None,
        NONE,
    )
    .await
    .unwrap();
    let records = rec.records.lock().unwrap().clone();
    assert_eq!(records.len(), 2);
    assert_eq!(
        records[1].old.as_ref().unwrap().attrs["displayName"],
        "Before"
    );
    assert_eq!(
        records[1].new.as_ref().unwrap().attrs["displayName"],
        "After"
    );
    let stale = svc
        .patch(
            BASE,
            ResourceKind::Group,
            &g.id,
            &patch,
            &Precondition::Tags(vec![Version(1)]),
            NONE,
        )
        .await
        .unwrap_err();
    assert_eq!(stale.status, 412);
}
