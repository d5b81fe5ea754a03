//! The agent loop holding tools over MCP in the same process: the calls cross rmcp
//! (JSON-RPC over an in-memory pipe) and the run reads exactly as with local tools.

use lav_agent::{Limits, Reply, Role, ScriptedPolicy, ToolCall, Toolbox, Tools, Usage, run};
use lav_mcp::{Client, Server};
use serde_json::json;

fn call(id: &str, name: &str, arguments: serde_json::Value) -> ToolCall {
    ToolCall {
        id: id.into(),
        name: name.into(),
        arguments,
    }
}

fn run_with(tools: &mut dyn Tools) -> lav_agent::Run {
    let usage = Usage::default();
    let mut llm = ScriptedPolicy::new(
        "scripted",
        vec![
            // Two calls in one tick, one of them malformed.
            Reply::Calls {
                text: String::new(),
                calls: vec![
                    call("a", "calculate", json!({"expression": "89 * 3"})),
                    call("b", "get_order", json!({"order_id": "1002"})),
                ],
                usage,
            },
            // The model corrects its argument.
            Reply::Calls {
                text: String::new(),
                calls: vec![call("c", "get_order", json!({"order_id": 1002}))],
                usage,
            },
            Reply::Final {
                text: "done".into(),
                usage,
            },
        ],
    );
    let state = lav_agent::State::new("system", "user");
    run(&mut llm, tools, state, Limits::default(), &mut ()).expect("run")
}

fn local() -> Toolbox {
    Toolbox::default()
        .with(lav_tools::Calculator)
        .with(lav_tools::Orders::seeded().unwrap())
}

#[test]
fn in_process_mcp_matches_local_tools() {
    let mut client = Client::in_process(Server::new("lav-test", local())).expect("connect");
    assert_eq!(client.transport, "in-process");
    assert_eq!(
        client.list(),
        local().list(),
        "specs survive the MCP round trip"
    );

    let over_mcp = run_with(&mut client);
    let direct = run_with(&mut local());
    assert_eq!(over_mcp, direct);

    let tool_msgs: Vec<_> = over_mcp
        .state
        .transcript
        .iter()
        .filter(|m| m.role == Role::Tool)
        .collect();
    assert_eq!(tool_msgs.len(), 3);
    assert_eq!(tool_msgs[0].content, "267");
    assert!(tool_msgs[1].is_error, "{:?}", tool_msgs[1]);
    assert!(!tool_msgs[2].is_error);
    assert!(tool_msgs[2].content.contains("USB-C cable"));
}

#[test]
fn server_state_is_shared_across_connections() {
    // Two clients of one server see the same database: a cancel through one is
    // visible through the other.
    let server = Server::new("lav-test", local());
    let mut a = Client::in_process(server.clone()).unwrap();
    let mut b = Client::in_process(server).unwrap();
    let r = a.call(&call("1", "cancel_order", json!({"order_id": 1008})));
    assert!(!r.is_error, "{r:?}");
    let r = b.call(&call("2", "get_order", json!({"order_id": 1008})));
    assert!(r.content.contains("cancelled"), "{r:?}");
    let r = b.call(&call("3", "no_such_tool", json!({})));
    assert!(
        r.is_error && r.content.contains("no tool named no_such_tool"),
        "{r:?}"
    );
}
