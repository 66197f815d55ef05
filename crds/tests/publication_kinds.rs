//! The publication CRDs (ClusterTable, NodePolicy): cluster-scoped, typed envelope,
//! NodePolicy with a status subresource for the agents; and the Rust types round-trip
//! through the JSON the CRDs describe.

use palisade_crds::publication::*;
use serde_json::json;

#[test]
fn publication_crds_are_cluster_scoped_with_typed_envelopes() {
    let crds: Vec<_> = publication_definitions()
        .into_iter()
        .map(|d| d.crd)
        .collect();
    let [tables, nodes] = &crds[..] else {
        panic!("two CRDs")
    };
    for (crd, kind) in [(tables, CLUSTER_TABLE_KIND), (nodes, NODE_POLICY_KIND)] {
        assert_eq!(crd["spec"]["group"], "palisade.dev");
        assert_eq!(crd["spec"]["scope"], "Cluster");
        assert_eq!(crd["spec"]["names"]["kind"], kind);
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        let spec = &schema["properties"]["spec"];
        for field in ["generation", "contentHash"] {
            assert!(
                spec["required"].as_array().unwrap().contains(&json!(field)),
                "{kind} {field}"
            );
        }
    }
    assert!(tables["spec"]["versions"][0].get("subresources").is_none());
    assert_eq!(
        nodes["spec"]["versions"][0]["subresources"],
        json!({"status": {}})
    );
    let status = &nodes["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"];
    assert_eq!(status["properties"]["appliedGeneration"]["type"], "integer");
}

#[test]
fn specs_round_trip_in_camel_case() {
    let spec = NodePolicySpec {
        generation: 3,
        content_hash: "ab".into(),
        content: NodePolicyContent::default(),
    };
    let value = serde_json::to_value(&spec).unwrap();
    assert_eq!(
        value,
        json!({"generation": 3, "contentHash": "ab", "hostAddresses": [], "endpoints": [],
               "policyTables": {}, "rules": {}})
    );
    assert_eq!(
        serde_json::from_value::<NodePolicySpec>(value).unwrap(),
        spec
    );
    // Integer map keys (JSON strings) behind the flattened content read from a Value.
    let mut with_tables = spec.clone();
    with_tables
        .content
        .policy_tables
        .insert(7, Default::default());
    let value = serde_json::to_value(&with_tables).unwrap();
    assert_eq!(value["policyTables"]["7"], json!({"shapes": []}), "{value}");
    assert_eq!(
        serde_json::from_value::<NodePolicySpec>(value).unwrap(),
        with_tables
    );
    let bad = json!({"generation": 1, "contentHash": "h", "hostAddresses": [], "endpoints": [],
                     "policyTables": {"x": {"shapes": []}}, "rules": {}});
    let err = serde_json::from_value::<NodePolicySpec>(bad)
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"x\" is not an unsigned integer"), "{err}");
    // The tables travel compact: a table read from its compact form is written back
    // the same; a malformed one is refused, naming the table and the shape.
    let compact = json!({"shapes": [{"peers": "0102", "rows": [[0, 6, 80, 16, 0, -1]]}]});
    let wire = json!({"generation": 1, "contentHash": "h", "hostAddresses": [], "endpoints": [],
                      "policyTables": {"3": compact}, "rules": {}});
    let read = serde_json::from_value::<NodePolicySpec>(wire.clone()).unwrap();
    assert_eq!(read.content.policy_tables[&3].rows.len(), 2);
    assert_eq!(serde_json::to_value(&read).unwrap(), wire);
    let mut bad = wire;
    bad["policyTables"]["3"]["shapes"][0]["peers"] = json!("zz");
    let err = serde_json::from_value::<NodePolicySpec>(bad)
        .unwrap_err()
        .to_string();
    assert!(err.contains("policyTables[3]: shape 0"), "{err}");
    let status: NodePolicyStatus =
        serde_json::from_value(json!({"appliedGeneration": 2, "appliedHash": "x"})).unwrap();
    assert_eq!(status.applied_generation, Some(2));
    assert_eq!(shard_name(TABLE_IPCACHE, 7), "ipcache-007");
}
