//! Signal sources against the real servers: a Prometheus scraping an exporter this test serves,
//! and an Alertmanager receiving an alert this test posts. No mocks. The binaries come from the
//! Debian packages `prometheus` and `prometheus-alertmanager`, which `scripts/test` installs; a
//! missing binary fails the test rather than skipping it.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use backout_core::criteria::sources;
use backout_core::criteria::{Observation, Series};
use backout_core::env::Resolver;
use backout_model::plan::{Criterion, Endpoint, NoData, OnError, Source, Sources};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use support::monitoring::{
    Reply, Server, exporter, free_port, post_alert, start_alertmanager, start_prometheus,
};

fn criterion(source: Source, timeout: Duration) -> Criterion {
    Criterion {
        id: "c".into(),
        title: None,
        description: None,
        source,
        fails_if: None,
        passes_if: None,
        every: backout_model::Duration::from_secs(60),
        delay: backout_model::Duration::from_secs(0),
        trips_after: 1,
        no_data: NoData::Inconclusive,
        errors_after: 3,
        on_error: OnError::Inconclusive,
        automatic: false,
        timeout: backout_model::Duration(timeout),
        shadow: false,
        trips_after_total: None,
        baseline: None,
    }
}

fn endpoint(url: &str) -> Endpoint {
    Endpoint {
        url: url.into(),
        headers: Vec::new(),
        timeout: None,
    }
}

fn prometheus_source(url: &str, query: &str) -> Box<dyn sources::Source> {
    let sources = Sources {
        prometheus: Some(endpoint(url)),
        alertmanager: None,
    };
    sources::for_criterion(
        &criterion(Source::Prometheus(query.into()), Duration::from_secs(5)),
        &sources,
        Arc::new(Resolver::default()),
    )
    .unwrap()
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn one_value(observation: &Observation) -> Option<f64> {
    match observation {
        Observation::Values { series } if series.len() == 1 => Some(series[0].value),
        _ => None,
    }
}

fn metrics_text(errors: &str) -> String {
    format!(
        "# HELP backout_test_errors Error ratio.\n# TYPE backout_test_errors gauge\n\
         backout_test_errors{{service=\"api\",zone=\"b\"}} {errors}\n\
         # TYPE backout_test_special gauge\n\
         backout_test_special{{kind=\"nan\"}} NaN\n\
         backout_test_special{{kind=\"inf\"}} +Inf\n"
    )
}

/// Polls a query until `done` holds for its observation, or panics after `within`.
async fn poll_until(
    server: &mut Server,
    query: &str,
    within: Duration,
    done: impl Fn(&Observation) -> bool,
) -> Observation {
    let source = prometheus_source(&server.url, query);
    let started = Instant::now();
    loop {
        server.check_alive("prometheus");
        let observation = source.observe().await;
        if done(&observation) {
            return observation;
        }
        assert!(
            started.elapsed() < within,
            "`{query}` still gives {observation:?} after {within:?}; prometheus log:\n{}",
            server.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_queries() {
    let metrics = Arc::new(Mutex::new(metrics_text("0.25")));
    let served = metrics.clone();
    let exporter = exporter(move |_path| Reply::ok(served.lock().unwrap().clone())).await;
    let started = Instant::now();
    let mut server = start_prometheus(&[("exporter", exporter)], Duration::from_secs(1), &[]);
    poll_until(
        &mut server,
        "up{job=\"exporter\"}",
        Duration::from_secs(20),
        |o| one_value(o) == Some(1.0),
    )
    .await;
    eprintln!(
        "prometheus scraped the exporter after {:?}",
        started.elapsed()
    );

    // The gauge, with every label Prometheus attached, sorted by name.
    let observation = prometheus_source(&server.url, "backout_test_errors")
        .observe()
        .await;
    assert_eq!(
        observation,
        Observation::Values {
            series: vec![Series {
                labels: labels(&[
                    ("__name__", "backout_test_errors"),
                    ("instance", &exporter.to_string()),
                    ("job", "exporter"),
                    ("service", "api"),
                    ("zone", "b"),
                ]),
                value: 0.25,
                baseline: None,
            }]
        }
    );

    // A later scrape is seen by a later query.
    *metrics.lock().unwrap() = metrics_text("0.75");
    poll_until(
        &mut server,
        "sum by (service) (backout_test_errors)",
        Duration::from_secs(10),
        |o| {
            *o == Observation::Values {
                series: vec![Series {
                    labels: labels(&[("service", "api")]),
                    value: 0.75,
                    baseline: None,
                }],
            }
        },
    )
    .await;

    // Nothing matches: no data.
    let observation = prometheus_source(&server.url, "backout_test_errors{service=\"none\"}")
        .observe()
        .await;
    assert_eq!(observation, Observation::NoData);

    // Bad PromQL: Prometheus' error type and message.
    let observation = prometheus_source(&server.url, "sum(backout_test_errors")
        .observe()
        .await;
    match &observation {
        Observation::Error { message } => assert!(
            message.starts_with("HTTP 400, prometheus: bad_data: "),
            "{message}"
        ),
        other => panic!("expected an error, got {other:?}"),
    }

    // A range vector is not something a criterion can judge.
    let observation = prometheus_source(&server.url, "backout_test_errors[1m]")
        .observe()
        .await;
    assert_eq!(
        observation,
        Observation::Error {
            message: "the query returned a matrix; a criterion needs an instant query \
                      returning a vector or a scalar"
                .into()
        }
    );

    // Special values, as scalars and as scraped samples.
    for (query, expected) in [("1/0", f64::INFINITY), ("-1/0", f64::NEG_INFINITY)] {
        let observation = prometheus_source(&server.url, query).observe().await;
        assert_eq!(
            observation,
            Observation::Values {
                series: vec![Series {
                    labels: Vec::new(),
                    value: expected,
                    baseline: None,
                }]
            },
            "{query}"
        );
    }
    let observation = prometheus_source(&server.url, "0/0").observe().await;
    assert!(
        one_value(&observation).is_some_and(f64::is_nan),
        "{observation:?}"
    );
    let observation = prometheus_source(&server.url, "vector(0/0)")
        .observe()
        .await;
    assert!(
        one_value(&observation).is_some_and(f64::is_nan),
        "{observation:?}"
    );
    let observation = prometheus_source(
        &server.url,
        "sum by (kind) (backout_test_special{kind=\"inf\"})",
    )
    .observe()
    .await;
    assert_eq!(
        one_value(&observation),
        Some(f64::INFINITY),
        "{observation:?}"
    );
    let observation = prometheus_source(
        &server.url,
        "sum by (kind) (backout_test_special{kind=\"nan\"})",
    )
    .observe()
    .await;
    assert!(
        one_value(&observation).is_some_and(f64::is_nan),
        "{observation:?}"
    );

    // A trailing slash on the endpoint URL still reaches the API.
    let observation = prometheus_source(&format!("{}/", server.url), "1+1")
        .observe()
        .await;
    assert_eq!(one_value(&observation), Some(2.0));
}

#[tokio::test]
async fn unreachable_prometheus_is_an_error_within_the_timeout_without_credentials() {
    let port = free_port();
    let resolver = Resolver::from_vars([(
        "PROMETHEUS_URL".to_string(),
        format!("http://admin:hunter2@127.0.0.1:{port}"),
    )]);
    let source = sources::for_criterion(
        &criterion(Source::Prometheus("up".into()), Duration::from_secs(2)),
        &Sources::default(),
        Arc::new(resolver),
    )
    .unwrap();
    let started = Instant::now();
    let observation = source.observe().await;
    assert!(started.elapsed() < Duration::from_secs(3));
    match observation {
        Observation::Error { message } => {
            assert!(message.starts_with("could not connect: "), "{message}");
            assert!(!message.contains("hunter2") && !message.contains(&port.to_string()));
        }
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            open.push(stream);
        }
    });
    let source = sources::for_criterion(
        &criterion(Source::Prometheus("up".into()), Duration::from_millis(500)),
        &Sources {
            prometheus: Some(endpoint(&format!("http://{addr}"))),
            alertmanager: None,
        },
        Arc::new(Resolver::default()),
    )
    .unwrap();
    let started = Instant::now();
    let observation = source.observe().await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        observation,
        Observation::Error {
            message: "timed out after 500ms; the request was abandoned".into()
        }
    );
}

#[tokio::test]
async fn endpoint_headers_and_query_encoding_reach_the_server() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(String::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 2048];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).await.unwrap();
            head.extend_from_slice(&buf[..n]);
        }
        *record.lock().unwrap() = String::from_utf8_lossy(&head).to_lowercase();
        let body = r#"{"status":"success","data":{"resultType":"scalar","result":[1,"3"]}}"#;
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(response.as_bytes()).await.unwrap();
    });
    let resolver = Resolver::from_vars([
        ("PROM".to_string(), format!("http://{addr}/prom")),
        ("TOKEN".to_string(), "s3cret".to_string()),
    ]);
    let sources = Sources {
        prometheus: Some(Endpoint {
            url: "${PROM}".into(),
            headers: vec![("Authorization".into(), "Bearer ${TOKEN}".into())],
            timeout: None,
        }),
        alertmanager: None,
    };
    let source = sources::for_criterion(
        &criterion(
            Source::Prometheus("rate(x{a=\"b c\"}[5m]) > 0".into()),
            Duration::from_secs(5),
        ),
        &sources,
        Arc::new(resolver),
    )
    .unwrap();
    assert_eq!(one_value(&source.observe().await), Some(3.0));
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.starts_with(
            "get /prom/api/v1/query?query=rate%28x%7ba%3d%22b+c%22%7d%5b5m%5d%29+%3e+0 "
        ),
        "{seen}"
    );
    assert!(seen.contains("authorization: bearer s3cret"), "{seen}");
}

#[test]
fn missing_endpoints_say_what_to_set() {
    let build = |source: Source| {
        sources::for_criterion(
            &criterion(source, Duration::from_secs(1)),
            &Sources::default(),
            Arc::new(Resolver::default()),
        )
        .err()
        .unwrap()
    };
    assert_eq!(
        build(Source::Prometheus("up".into())),
        "no prometheus endpoint: set `criteria.sources.prometheus.url` in the plan or the \
         PROMETHEUS_URL environment variable"
    );
    assert_eq!(
        build(Source::Alertmanager {
            alert: "X".into(),
            matchers: Vec::new()
        }),
        "no alertmanager endpoint: set `criteria.sources.alertmanager.url` in the plan or the \
         ALERTMANAGER_URL environment variable"
    );
    let err = sources::for_criterion(
        &criterion(Source::Prometheus("up".into()), Duration::from_secs(1)),
        &Sources {
            prometheus: Some(endpoint("${PROMETHEUS_URL}")),
            alertmanager: None,
        },
        Arc::new(Resolver::default()),
    )
    .err()
    .unwrap();
    assert!(err.contains("`PROMETHEUS_URL` is not set"), "{err}");
}

fn alertmanager_source(
    url: &str,
    alert: &str,
    matchers: &[(&str, &str)],
) -> Box<dyn sources::Source> {
    let resolver = Resolver::from_vars([("ALERTMANAGER_URL".to_string(), url.to_string())]);
    sources::for_criterion(
        &criterion(
            Source::Alertmanager {
                alert: alert.into(),
                matchers: labels(matchers),
            },
            Duration::from_secs(5),
        ),
        &Sources::default(),
        Arc::new(resolver),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_alerts() {
    let started = Instant::now();
    let server = start_alertmanager();
    eprintln!("alertmanager ready after {:?}", started.elapsed());

    // Before any alert: not firing.
    let observation = alertmanager_source(&server.url, "BackoutHighErrors", &[])
        .observe()
        .await;
    assert_eq!(
        observation,
        Observation::Judged {
            failing: false,
            detail: "alert BackoutHighErrors not firing".into()
        }
    );

    let now = SystemTime::now();
    post_alert(
        &server,
        &[
            ("alertname", "BackoutHighErrors"),
            ("severity", "page"),
            ("service", "api"),
        ],
        now,
        now + Duration::from_secs(600),
    );

    let firing = Observation::Judged {
        failing: true,
        detail: "alert BackoutHighErrors firing: {alertname=\"BackoutHighErrors\", \
                 service=\"api\", severity=\"page\"}"
            .into(),
    };
    let source = alertmanager_source(
        &server.url,
        "BackoutHighErrors",
        &[("severity", "page"), ("service", "api")],
    );
    let started = Instant::now();
    loop {
        let observation = source.observe().await;
        if observation == firing {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{observation:?}\n{}",
            server.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        alertmanager_source(&server.url, "BackoutHighErrors", &[])
            .observe()
            .await,
        firing
    );

    // A matcher the alert does not have, or another alert name: not firing.
    assert_eq!(
        alertmanager_source(&server.url, "BackoutHighErrors", &[("severity", "ticket")])
            .observe()
            .await,
        Observation::Judged {
            failing: false,
            detail: "alert BackoutHighErrors not firing".into()
        }
    );
    assert_eq!(
        alertmanager_source(&server.url, "BackoutOther", &[("severity", "page")])
            .observe()
            .await,
        Observation::Judged {
            failing: false,
            detail: "alert BackoutOther not firing".into()
        }
    );
    // A value with characters that need quoting is escaped, not a broken filter.
    assert_eq!(
        alertmanager_source(&server.url, "BackoutHighErrors", &[("service", "a\"p,i")])
            .observe()
            .await,
        Observation::Judged {
            failing: false,
            detail: "alert BackoutHighErrors not firing".into()
        }
    );
}
