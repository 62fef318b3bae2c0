//! `schema`, `init` and `render`, `--help` with an example, and usage errors.

use crate::{backout, fixture, tempdir, valid_fixtures};

// ---------------------------------------------------------------- schema, init

#[test]
fn schema_is_json_with_the_plan_sections() {
    let dir = tempdir();
    let schema = backout(dir.path()).arg("schema").run().code(0).json();
    assert!(
        schema["$schema"]
            .as_str()
            .is_some_and(|s| s.contains("json-schema.org")),
        "{schema:#}"
    );
    for section in [
        "version",
        "release",
        "criteria",
        "window",
        "procedure",
        "communication",
        "testing",
    ] {
        assert!(
            schema["properties"][section].is_object(),
            "properties.{section}"
        );
    }
}

#[test]
fn init_writes_a_skeleton_that_answers_nothing_yet() {
    let dir = tempdir();
    backout(dir.path())
        .args(["init", "--service", "payments", "-o", "backout.yaml"])
        .run()
        .code(0)
        .stderr_has("backout lint backout.yaml");
    let text =
        std::fs::read_to_string(dir.path().join("backout.yaml")).expect("init wrote the file");
    assert!(text.contains("payments"), "{text}");

    let output = backout(dir.path())
        .args(["lint", "--format", "json", "backout.yaml"])
        .run()
        .code(2);
    let diagnostics = output.json();
    let codes: Vec<(&str, &str)> = diagnostics
        .as_array()
        .expect("array")
        .iter()
        .map(|d| {
            (
                d["code"].as_str().unwrap_or("?"),
                d["severity"].as_str().unwrap_or("?"),
            )
        })
        .collect();
    assert_eq!(codes, vec![("B010", "error"); 10], "{diagnostics:#}");
}

#[test]
fn init_refuses_to_overwrite_without_force() {
    let dir = tempdir();
    let path = dir.path().join("backout.yaml");
    std::fs::write(&path, "my own plan\n").expect("write");
    backout(dir.path())
        .args(["init", "-o", "backout.yaml"])
        .run()
        .code(2)
        .stderr_has("already exists")
        .stderr_has("--force");
    assert_eq!(
        std::fs::read_to_string(&path).expect("read"),
        "my own plan\n"
    );

    backout(dir.path())
        .args(["init", "-o", "backout.yaml", "--force"])
        .run()
        .code(0);
    assert!(
        std::fs::read_to_string(&path)
            .expect("read")
            .contains("version: 1")
    );
}

#[test]
fn init_to_stdout_prints_the_skeleton() {
    let dir = tempdir();
    backout(dir.path())
        .args(["init", "-o", "-"])
        .run()
        .code(0)
        .stdout_has("version: 1");
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("list").count(),
        0,
        "nothing written"
    );
}

// ---------------------------------------------------------------- render

#[test]
fn render_every_valid_fixture_as_markdown_and_html() {
    let dir = tempdir();
    for plan in valid_fixtures() {
        let md = backout(dir.path()).arg("render").arg(&plan).run().code(0);
        let text = md.stdout();
        assert!(
            text.contains("Q9"),
            "{}: markdown lacks the questions",
            plan.display()
        );
        assert!(!text.contains("<svg"), "markdown has no SVG");

        let html = backout(dir.path())
            .args(["render", "--format", "html"])
            .arg(&plan)
            .run()
            .code(0);
        let text = html.stdout();
        assert!(
            text.contains("<html") && text.contains("</html>"),
            "{}",
            plan.display()
        );
        // The timeline draws the procedure; a plan whose procedure is not applicable has none.
        let source = std::fs::read_to_string(&plan).expect("readable");
        let has_procedure = !source.contains("procedure:\n  not_applicable:");
        assert_eq!(
            text.contains("<svg"),
            has_procedure,
            "{}: <svg> timeline",
            plan.display()
        );
    }
}

#[test]
fn render_writes_to_a_file_with_o() {
    let dir = tempdir();
    backout(dir.path())
        .args(["render", "--format", "html", "-o", "plan.html"])
        .arg(fixture("valid/checkout.yaml"))
        .run()
        .code(0)
        .stdout_is("");
    let text =
        std::fs::read_to_string(dir.path().join("plan.html")).expect("render wrote the file");
    assert!(text.contains("<svg"));
}

#[test]
fn render_of_an_invalid_plan_prints_its_errors_and_exits_2() {
    let dir = tempdir();
    let bad = fixture("invalid/12-duplicate-keys.yaml");
    for format in ["md", "html"] {
        let errors = backout(dir.path())
            .args(["render", "--format", format])
            .arg(&bad)
            .run()
            .code(2)
            .stdout_is("")
            .stderr_has("duplicate key `environment`")
            .stderr_has("duplicate key `expected`")
            .stderr_has("2 error")
            .stderr();
        assert_eq!(errors.matches("B002").count(), 2, "{errors}");
    }
    backout(dir.path())
        .args(["render", "missing.yaml"])
        .run()
        .code(2)
        .stderr_has("missing.yaml")
        .stderr_has("no such file");
}

#[test]
fn render_of_a_plan_with_warnings_renders_and_warns() {
    let dir = tempdir();
    let document = backout(dir.path())
        .arg("render")
        .arg(fixture("invalid/66-risky-step.yaml"))
        .run()
        .code(0)
        .stderr_has("1 warning")
        .stdout();
    assert!(!document.is_empty());
}

// ---------------------------------------------------------------- help

#[test]
fn every_subcommand_help_has_an_example() {
    let dir = tempdir();
    for command in ["init", "lint", "render", "schema"] {
        backout(dir.path())
            .args([command, "--help"])
            .run()
            .code(0)
            .stdout_has("Example");
    }
    backout(dir.path())
        .arg("--help")
        .run()
        .code(0)
        .stdout_has("backout init");
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempdir();
    backout(dir.path()).arg("lint").run().code(2);
    backout(dir.path())
        .args(["lint", "--format", "xml", "x.yaml"])
        .run()
        .code(2);
    backout(dir.path()).arg("no-such-command").run().code(2);
}
