//! Serves one parsed request against the store: the verbs other than watch
//! (which streams, see `watch_stream`), discovery, and the encoding of
//! objects and lists, including the metadata-only forms kube asks for with
//! `Accept: application/json;as=PartialObjectMetadata...`.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde_json::{Value, json};

use crate::discovery;
use crate::merge::PatchKind;
use crate::resource::ResourceType;
use crate::route::{Query, ResourceRef, Target, Verb};
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::{
    DEFAULT_MANAGER, DeletePreconditions, Filter, ListOptions, ListPage, Store, WriteContext,
};

/// A request, parsed.
pub struct ParsedRequest {
    pub query: Query,
    pub content_type: String,
    pub accept: String,
    pub user_agent: String,
    pub body: Bytes,
}

impl ParsedRequest {
    /// The field manager: `fieldManager`, else the user agent's product name.
    pub fn field_manager(&self) -> String {
        if let Some(m) = self.query.get("fieldManager").filter(|m| !m.is_empty()) {
            return m.to_string();
        }
        match self.user_agent.split('/').next() {
            Some(product) if !product.is_empty() => product.to_string(),
            _ => DEFAULT_MANAGER.to_string(),
        }
    }

    fn write_context(&self) -> WriteContext {
        WriteContext {
            field_manager: self.field_manager(),
            dry_run: self.query.get("dryRun") == Some("All"),
        }
    }

    /// Objects are returned as `PartialObjectMetadata` when asked.
    pub fn metadata_only(&self) -> bool {
        self.accept.contains("as=PartialObjectMetadata")
    }
}

/// The filter of a list, watch or delete-collection request.
pub fn filter(rt: &ResourceType, target: &ResourceRef, query: &Query) -> Result<Filter, ApiError> {
    Ok(Filter {
        namespace: (rt.namespaced() && !target.namespace.is_empty())
            .then(|| target.namespace.clone()),
        labels: LabelSelector::parse(query.get("labelSelector").unwrap_or_default())?,
        fields: FieldSelector::parse(query.get("fieldSelector").unwrap_or_default(), rt)?,
    })
}

/// Serves a discovery request.
pub fn discovery(store: &Store, target: &Target) -> Result<Bytes, ApiError> {
    let doc = match target {
        Target::Version => discovery::version(),
        Target::CoreVersions => discovery::core_versions(),
        Target::Groups => discovery::group_list(store.registry()),
        Target::Group(g) => discovery::group(store.registry(), g)?,
        Target::Resources { group, version } => {
            discovery::resource_list(store.registry(), group, version)?
        }
        Target::Resource(_) => unreachable!("resources are not discovery"),
    };
    Ok(to_bytes(&doc))
}

/// Serves a non-watch verb on a resource; returns the status code and body.
pub fn resource(
    store: &Mutex<Store>,
    request: &ParsedRequest,
    target: &ResourceRef,
    verb: Verb,
) -> Result<(u16, Bytes), ApiError> {
    let rt = store.lock().expect("store lock").resource(&target.key)?;
    if !target.subresource.is_empty() && (target.subresource != "status" || !rt.status_subresource)
    {
        return Err(ApiError::new(
            404,
            "NotFound",
            format!(
                "the server could not find the requested resource ({}/{})",
                rt.plural, target.subresource
            ),
        ));
    }
    if !rt.namespaced() && !target.namespace.is_empty() {
        return Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    }
    let name = target.name.clone().unwrap_or_default();
    let ctx = request.write_context();
    let metadata_only = request.metadata_only();
    let one = |object: Arc<Value>, code: u16| Ok((code, encode_object(&object, metadata_only)));
    match verb {
        Verb::Get => {
            let object = store
                .lock()
                .expect("store lock")
                .get(&rt, &target.namespace, &name)?;
            one(object, 200)
        }
        Verb::List => {
            let filter = filter(&rt, target, &request.query)?;
            let options = list_options(&request.query)?;
            let page = store
                .lock()
                .expect("store lock")
                .list(&rt, &filter, &options)?;
            Ok((200, encode_list(&rt, &page, metadata_only)))
        }
        Verb::Create => {
            let body = parse_json(&request.body)?;
            let object = store.lock().expect("store lock").create(
                &rt,
                &target.namespace,
                body,
                &ctx,
                false,
            )?;
            one(object, 201)
        }
        Verb::Update => {
            let body = parse_json(&request.body)?;
            let object = store.lock().expect("store lock").update(
                &rt,
                &target.namespace,
                &name,
                &target.subresource,
                body,
                &ctx,
            )?;
            one(object, 200)
        }
        Verb::Patch => {
            let kind = PatchKind::from_content_type(&request.content_type)?;
            if kind == PatchKind::Apply
                && request.query.get("fieldManager").is_none_or(str::is_empty)
            {
                return Err(ApiError::bad_request(
                    "PATCH, application/apply-patch+yaml requests require fieldManager to be set",
                ));
            }
            let patch = if kind == PatchKind::Apply {
                parse_yaml_or_json(&request.body)?
            } else {
                parse_json(&request.body)?
            };
            let force = request.query.flag("force");
            if force && kind != PatchKind::Apply {
                return Err(ApiError::bad_request("force is only allowed for apply"));
            }
            let mut guard = store.lock().expect("store lock");
            let existed = guard.get(&rt, &target.namespace, &name).is_ok();
            let object = guard.patch(
                &rt,
                &target.namespace,
                &name,
                &target.subresource,
                kind,
                patch,
                force,
                &ctx,
            )?;
            drop(guard);
            one(object, if existed { 200 } else { 201 })
        }
        Verb::Delete => {
            let preconditions = delete_preconditions(&request.body)?;
            let object = store.lock().expect("store lock").delete(
                &rt,
                &target.namespace,
                &name,
                &preconditions,
                &ctx,
            )?;
            one(object, 200)
        }
        Verb::DeleteCollection => {
            let filter = filter(&rt, target, &request.query)?;
            let mut guard = store.lock().expect("store lock");
            let page = guard.list(&rt, &filter, &ListOptions::default())?;
            let mut deleted = Vec::new();
            for object in &page.items {
                let ns = object
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let n = object
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                deleted.push(guard.delete(&rt, ns, n, &DeletePreconditions::default(), &ctx)?);
            }
            let revision = guard.revision();
            drop(guard);
            let page = ListPage {
                items: deleted,
                revision,
                continue_token: None,
                remaining: 0,
            };
            Ok((200, encode_list(&rt, &page, metadata_only)))
        }
        Verb::Watch | Verb::Discovery => unreachable!("served elsewhere"),
    }
}

pub fn list_options(query: &Query) -> Result<ListOptions, ApiError> {
    let exact = match query.get("resourceVersionMatch") {
        None | Some("") | Some("NotOlderThan") => false,
        Some("Exact") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "resourceVersionMatch: Unsupported value: \"{other}\""
            )));
        }
    };
    let resource_version = query.get("resourceVersion").map(str::to_string);
    if exact && matches!(resource_version.as_deref(), None | Some("") | Some("0")) {
        return Err(ApiError::bad_request(
            "resourceVersionMatch: Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\" or unset",
        ));
    }
    let continue_token = query
        .get("continue")
        .filter(|c| !c.is_empty())
        .map(str::to_string);
    if continue_token.is_some() && resource_version.as_deref().is_some_and(|rv| !rv.is_empty()) {
        return Err(ApiError::bad_request(
            "specifying resource version is not allowed when using continue",
        ));
    }
    Ok(ListOptions {
        resource_version,
        exact,
        limit: query.number("limit")?.map(|l| l as usize),
        continue_token,
    })
}

fn delete_preconditions(body: &Bytes) -> Result<DeletePreconditions, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(DeletePreconditions::default());
    }
    let options = parse_json(body)?;
    let field = |f: &str| {
        options
            .pointer(&format!("/preconditions/{f}"))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    Ok(DeletePreconditions {
        uid: field("uid"),
        resource_version: field("resourceVersion"),
    })
}

fn parse_json(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body of the request could not be decoded as JSON: {e}"
        ))
    })
}

fn parse_yaml_or_json(body: &Bytes) -> Result<Value, ApiError> {
    if let Ok(v) = serde_json::from_slice(body) {
        return Ok(v);
    }
    serde_norway::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
}

pub fn to_bytes(value: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(value).expect("JSON values serialize"))
}

/// An object, or its PartialObjectMetadata.
pub fn encode_object(object: &Value, metadata_only: bool) -> Bytes {
    if metadata_only {
        to_bytes(&partial_metadata(object))
    } else {
        Bytes::from(serde_json::to_vec(object).expect("JSON values serialize"))
    }
}

pub fn partial_metadata(object: &Value) -> Value {
    json!({
        "apiVersion": "meta.k8s.io/v1",
        "kind": "PartialObjectMetadata",
        "metadata": object.get("metadata").cloned().unwrap_or(json!({})),
    })
}

/// A list response, written without cloning the items.
pub fn encode_list(rt: &ResourceType, page: &ListPage, metadata_only: bool) -> Bytes {
    let mut metadata = json!({"resourceVersion": page.revision.to_string()});
    if let Some(token) = &page.continue_token {
        metadata["continue"] = json!(token);
        metadata["remainingItemCount"] = json!(page.remaining);
    }
    let (api_version, kind) = if metadata_only {
        (
            "meta.k8s.io/v1".to_string(),
            "PartialObjectMetadataList".to_string(),
        )
    } else {
        (rt.api_version(), format!("{}List", rt.kind))
    };
    let head = json!({"kind": kind, "apiVersion": api_version, "metadata": metadata});
    let mut out = serde_json::to_vec(&head).expect("JSON values serialize");
    out.pop(); // the closing brace
    out.extend_from_slice(b",\"items\":[");
    for (i, item) in page.items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        if metadata_only {
            serde_json::to_writer(&mut out, &partial_metadata(item))
                .expect("JSON values serialize");
        } else {
            serde_json::to_writer(&mut out, &**item).expect("JSON values serialize");
        }
    }
    out.extend_from_slice(b"]}");
    Bytes::from(out)
}
