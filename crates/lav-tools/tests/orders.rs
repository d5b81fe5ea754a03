//! The orders database: lookups, a state change with its rule, and model text that
//! stays data.

use lav_agent_types::{ToolCall, Tools};
use lav_tools::Orders;
use serde_json::{Value, json};

fn call(db: &mut Orders, name: &str, args: Value) -> (Value, bool) {
    let r = db.call(&ToolCall {
        id: "1".into(),
        name: name.into(),
        arguments: args,
    });
    (
        serde_json::from_str(&r.content).unwrap_or(Value::String(r.content)),
        r.is_error,
    )
}

#[test]
fn lookups_and_cancellation_follow_the_data() {
    let mut db = Orders::seeded().unwrap();
    let (o, err) = call(&mut db, "get_order", json!({"order_id": 1004}));
    assert!(!err);
    assert_eq!(
        (
            o["customer"].as_str(),
            o["total"].as_str(),
            o["status"].as_str()
        ),
        (Some("Grace Hopper"), Some("199.00"), Some("placed"))
    );
    let (list, _) = call(&mut db, "list_orders", json!({"customer": "ada byron"}));
    let ids: Vec<i64> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [1009, 1002, 1001], "newest first");
    // A limit keeps the newest: `limit` 1 is the latest order alone.
    let (latest, err) = call(
        &mut db,
        "list_orders",
        json!({"customer": "Ada Byron", "limit": 1}),
    );
    assert!(!err);
    assert_eq!(latest.as_array().map(Vec::len), Some(1));
    assert_eq!(latest[0]["id"], 1009);
    let (two, _) = call(
        &mut db,
        "list_orders",
        json!({"customer": "Ada Byron", "limit": 2}),
    );
    assert_eq!(two.as_array().map(Vec::len), Some(2));
    let (o, err) = call(&mut db, "cancel_order", json!({"order_id": 1004}));
    assert!(!err && o["status"] == "cancelled");
    let (e, err) = call(&mut db, "cancel_order", json!({"order_id": 1003}));
    assert!(err && e.as_str().unwrap().contains("is shipped"), "{e}");
    // A fresh database is the seed again.
    assert_eq!(
        Orders::seeded()
            .unwrap()
            .order(1004)
            .unwrap()
            .unwrap()
            .status,
        "placed"
    );
}

#[test]
fn bad_arguments_and_injection_are_error_results() {
    let mut db = Orders::seeded().unwrap();
    for (name, args, why) in [
        ("get_order", json!({"order_id": 42}), "there is no order 42"),
        (
            "get_order",
            json!({"order_id": "1001"}),
            "needs an integer `order_id`",
        ),
        (
            "list_orders",
            json!({"customer": "x' OR '1'='1"}),
            "no orders for a customer named",
        ),
        ("list_orders", json!({}), "needs a string `customer`"),
        (
            "list_orders",
            json!({"customer": "Ada Byron", "limit": 0}),
            "`limit` as a whole number of at least 1",
        ),
        ("drop_tables", json!({}), "no tool named drop_tables"),
    ] {
        let (v, err) = call(&mut db, name, args);
        assert!(err && v.as_str().unwrap().contains(why), "{name}: {v}");
    }
    // The injection attempt changed nothing.
    assert_eq!(db.orders_of("Alan Turing").unwrap().len(), 3);
}

/// The schemas hold a constrained model to the shop's data: four-digit order numbers,
/// and the customers the database holds, by name.
#[test]
fn order_schemas_admit_the_shops_ids_and_names_only() {
    use std::sync::Arc;
    let specs = lav_tools::Orders::seeded().unwrap().list();
    let grammar = |name: &str| {
        let s = specs.iter().find(|s| s.name == name).unwrap();
        Arc::new(lav_grammar::Grammar::json(&s.input_schema))
    };
    let accepts = |g: &Arc<lav_grammar::Grammar>, s: &str| {
        let mut m = lav_grammar::Matcher::new(g.clone());
        m.advance_bytes(s.as_bytes()) && m.accepting()
    };
    let get = grammar("get_order");
    assert!(get.notes.is_empty(), "{:?}", get.notes);
    assert!(accepts(&get, r#"{"order_id": 1003}"#));
    for bad in ["42", "10030", "-1003", "1003.5", "\"1003\""] {
        assert!(
            !accepts(&get, &format!(r#"{{"order_id": {bad}}}"#)),
            "{bad}"
        );
    }
    let list = grammar("list_orders");
    assert!(list.notes.is_empty(), "{:?}", list.notes);
    for name in [
        "Ada Byron",
        "Grace Hopper",
        "Alan Turing",
        "Edsger Dijkstra",
    ] {
        assert!(
            accepts(&list, &format!(r#"{{"customer": "{name}"}}"#)),
            "{name}"
        );
    }
    for bad in [
        "ada",
        "Ada",
        "Ada  Byron",
        "Ada Byron 1003",
        "}}",
        "Lisstorry Lys",
    ] {
        assert!(
            !accepts(&list, &format!(r#"{{"customer": "{bad}"}}"#)),
            "{bad}"
        );
    }
}
