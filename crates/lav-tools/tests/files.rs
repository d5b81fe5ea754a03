//! The file reader stays inside its folder whatever path it is given.

use lav_agent_types::{ToolCall, Tools};
use lav_tools::FileReader;
use serde_json::json;

fn setup() -> (tempfile::TempDir, FileReader) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("notes")).unwrap();
    std::fs::write(root.join("notes/plan.md"), "step one").unwrap();
    std::fs::write(dir.path().join("secret.txt"), "do not read").unwrap();
    std::fs::write(root.join("big.txt"), "x".repeat(70_000)).unwrap();
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(dir.path().join("secret.txt"), root.join("out")).unwrap();
        std::os::unix::fs::symlink(root.join("notes/plan.md"), root.join("in")).unwrap();
    }
    let r = FileReader::new(&root).unwrap();
    (dir, r)
}

#[test]
fn reads_inside_and_refuses_every_way_out() {
    let (dir, r) = setup();
    assert_eq!(r.read("notes/plan.md").unwrap(), "step one");
    assert_eq!(r.read("./notes/plan.md").unwrap(), "step one");
    let secret = dir.path().join("secret.txt");
    for (path, why) in [
        ("../secret.txt", "`..` is refused"),
        ("notes/../../secret.txt", "`..` is refused"),
        (secret.to_str().unwrap(), "absolute paths are refused"),
        ("/etc/passwd", "absolute paths are refused"),
        ("missing.txt", "no such file"),
        ("notes", "not a file"),
        ("big.txt", "over the 65536-byte limit"),
        ("", "relative to the folder"),
    ] {
        let e = r.read(path).unwrap_err();
        assert!(e.contains(why), "{path}: {e}");
        assert!(!e.contains("do not read"));
    }
    #[cfg(unix)]
    {
        let e = r.read("out").unwrap_err();
        assert!(e.contains("outside the folder"), "{e}");
        assert_eq!(
            r.read("in").unwrap(),
            "step one",
            "a link that stays inside is fine"
        );
    }
}

#[test]
fn bad_calls_come_back_as_error_results() {
    let (_dir, mut r) = setup();
    let call = |name: &str, args| ToolCall {
        id: "1".into(),
        name: name.into(),
        arguments: args,
    };
    let ok = r.call(&call("read_file", json!({"path": "notes/plan.md"})));
    assert!(!ok.is_error && ok.content == "step one");
    for (name, args, why) in [
        ("read_file", json!({}), "needs a string argument `path`"),
        (
            "read_file",
            json!({"path": 7}),
            "needs a string argument `path`",
        ),
        (
            "write_file",
            json!({"path": "x"}),
            "no tool named write_file",
        ),
        ("read_file", json!({"path": "../secret.txt"}), "refused"),
    ] {
        let res = r.call(&call(name, args));
        assert!(
            res.is_error && res.content.contains(why),
            "{name}: {}",
            res.content
        );
    }
    assert_eq!(r.list()[0].name, "read_file");
}
