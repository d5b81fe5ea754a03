//! The orders database (SQLite through rusqlite, in memory): a small made-up shop the
//! agent labs query and change. Every query is parameterized, so text from the model
//! is data, never SQL.

use lav_agent_types::{ToolCall, ToolResult, ToolSpec, Tools};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Value, json};

const SEED: &str = include_str!("../data/orders.sql");

pub struct Orders {
    conn: Connection,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Order {
    pub id: i64,
    pub customer: String,
    pub item: String,
    pub quantity: i64,
    pub total: String,
    pub status: String,
    pub placed_on: String,
}

const SELECT: &str = "SELECT o.id, c.name, o.item, o.quantity, o.total_cents, o.status, o.placed_on
     FROM orders o JOIN customers c ON c.id = o.customer_id";

fn row(r: &rusqlite::Row) -> rusqlite::Result<Order> {
    let cents: i64 = r.get(4)?;
    Ok(Order {
        id: r.get(0)?,
        customer: r.get(1)?,
        item: r.get(2)?,
        quantity: r.get(3)?,
        total: format!("{}.{:02}", cents / 100, cents % 100),
        status: r.get(5)?,
        placed_on: r.get(6)?,
    })
}

impl Orders {
    /// A fresh in-memory copy of the shop, the same every time.
    pub fn seeded() -> Result<Orders, String> {
        let conn = Connection::open_in_memory().map_err(|e| e.to_string())?;
        conn.execute_batch(SEED)
            .map_err(|e| format!("orders seed: {e}"))?;
        Ok(Orders { conn })
    }

    pub fn order(&self, id: i64) -> Result<Option<Order>, String> {
        self.conn
            .query_row(&format!("{SELECT} WHERE o.id = ?1"), params![id], row)
            .optional()
            .map_err(|e| e.to_string())
    }

    /// A customer's orders, newest first; `customer` matches the name exactly,
    /// ignoring case.
    pub fn orders_of(&self, customer: &str) -> Result<Vec<Order>, String> {
        let mut st = self
            .conn
            .prepare(&format!(
                "{SELECT} WHERE lower(c.name) = lower(?1) ORDER BY o.placed_on DESC, o.id DESC"
            ))
            .map_err(|e| e.to_string())?;
        st.query_map(params![customer], row)
            .and_then(|rows| rows.collect())
            .map_err(|e| e.to_string())
    }

    /// The customers' names, as the database holds them.
    pub fn customers(&self) -> Result<Vec<String>, String> {
        let mut st = self
            .conn
            .prepare("SELECT name FROM customers ORDER BY id")
            .map_err(|e| e.to_string())?;
        st.query_map([], |r| r.get(0))
            .and_then(|rows| rows.collect())
            .map_err(|e| e.to_string())
    }

    /// Cancels an order that has not shipped.
    pub fn cancel(&self, id: i64) -> Result<Order, String> {
        let o = self
            .order(id)?
            .ok_or_else(|| format!("there is no order {id}"))?;
        if o.status != "placed" {
            return Err(format!(
                "order {id} is {}; only placed orders can be cancelled",
                o.status
            ));
        }
        self.conn
            .execute(
                "UPDATE orders SET status = 'cancelled' WHERE id = ?1",
                params![id],
            )
            .map_err(|e| e.to_string())?;
        self.order(id)?
            .ok_or_else(|| format!("order {id} vanished"))
    }
}

/// Customers named outright in the schema, at most.
const MAX_ENUM: usize = 50;

impl Tools for Orders {
    fn list(&self) -> Vec<ToolSpec> {
        // Order numbers have four digits. A small shop's customers are named
        // outright (a made-up name cannot be sent); a large one's only by shape.
        let id = json!({"type": "object", "properties": {"order_id": {"type": "integer", "minimum": 1000, "maximum": 9999, "examples": [1234]}}, "required": ["order_id"], "additionalProperties": false});
        let name = match self.customers() {
            Ok(names) if (1..=MAX_ENUM).contains(&names.len()) => {
                json!({"type": "string", "enum": names})
            }
            _ => {
                json!({"type": "string", "pattern": "^[A-Z][a-z]+( [A-Z][a-z]+){1,3}$", "maxLength": 60, "examples": ["Jane Doe"]})
            }
        };
        vec![
            ToolSpec {
                name: "get_order".into(),
                description: "Looks up one order by its number.".into(),
                input_schema: id.clone(),
            },
            ToolSpec {
                name: "list_orders".into(),
                description: "Lists a customer's orders, newest first, by the customer's full name; `limit` 1 gives only the latest.".into(),
                input_schema: json!({"type": "object", "properties": {"customer": name, "limit": {"type": "integer", "minimum": 1, "maximum": 20, "examples": [1]}}, "required": ["customer"], "additionalProperties": false}),
            },
            ToolSpec {
                name: "cancel_order".into(),
                description: "Cancels an order that has not shipped yet.".into(),
                input_schema: id,
            },
        ]
    }

    fn call(&mut self, call: &ToolCall) -> ToolResult {
        let id = call.arguments.get("order_id").and_then(Value::as_i64);
        let customer = call.arguments.get("customer").and_then(Value::as_str);
        let r: Result<Value, String> = match (call.name.as_str(), id, customer) {
            ("get_order", Some(id), _) => self
                .order(id)
                .and_then(|o| o.ok_or_else(|| format!("there is no order {id}")))
                .map(|o| json!(o)),
            ("list_orders", _, Some(c)) => self.orders_of(c).and_then(|mut v| {
                if v.is_empty() {
                    return Err(format!("no orders for a customer named {c:?}"));
                }
                // A limit keeps the newest few: a long list is where a small model
                // picks the wrong entry.
                match call.arguments.get("limit") {
                    None | Some(Value::Null) => {}
                    Some(l) => match l.as_u64() {
                        Some(n @ 1..) => v.truncate(n as usize),
                        _ => {
                            return Err(format!(
                                "list_orders takes `limit` as a whole number of at least 1, got {l}"
                            ));
                        }
                    },
                }
                Ok(json!(v))
            }),
            ("cancel_order", Some(id), _) => self.cancel(id).map(|o| json!(o)),
            ("get_order" | "cancel_order", None, _) => {
                Err(format!("{} needs an integer `order_id`", call.name))
            }
            ("list_orders", _, None) => Err("list_orders needs a string `customer`".into()),
            (other, ..) => Err(format!(
                "no tool named {other}; this server has get_order, list_orders, cancel_order"
            )),
        };
        ToolResult::from_result(r.map(|v| v.to_string()))
    }
}
