//! The manager against in-memory stores: one instance, and two instances sharing one store.
//! Pipes point at an unreachable broker, so a RUNNING pipe stays STARTING.

use super::*;
use crate::model::parse_definition;
use crate::store::MemoryStore;

fn def(name: &str, desired: &str) -> PipeDefinition {
    parse_definition(
        &format!(
            r#"{{"Name":"{name}","DesiredState":"{desired}","Source":"smk://127.0.0.1:1","Target":"http://127.0.0.1:1/",
            "RoleArn":"arn:aws:iam::123456789012:role/r",
            "SourceParameters":{{"SelfManagedKafkaParameters":{{"TopicName":"t"}}}}}}"#
        ),
        false,
    )
    .unwrap()
}

fn cluster(id: &str) -> ClusterOptions {
    ClusterOptions {
        instance_id: id.into(),
        heartbeat_interval: Duration::from_millis(50),
        live_window: Duration::from_millis(500),
        resync_interval: Duration::from_millis(100),
        max_pipes: DEFAULT_MAX_PIPES,
        static_membership: true,
    }
}

#[test]
fn a_group_instance_id_is_the_instance_and_the_pipe_in_kafkas_characters() {
    assert_eq!(group_instance_id("node-1", "orders"), "node-1-orders");
    // The default instance id is `<host>:<port>`.
    assert_eq!(group_instance_id("host.a:9000", "p_1"), "host.a_9000-p_1");
    assert_eq!(group_instance_id(&"i".repeat(300), "p").len(), 249);
}

async fn manager_as(store: Arc<dyn PipeStore>, id: &str) -> PipeManager {
    PipeManager::open(
        store,
        ValidationContext::default(),
        Arc::new(Metrics::new()),
        RuntimeOptions::default(),
        cluster(id),
    )
    .await
    .unwrap()
}

async fn manager(store: Arc<dyn PipeStore>) -> PipeManager {
    manager_as(store, "a").await
}

async fn wait_state(m: &PipeManager, name: &str, want: CurrentState) {
    for _ in 0..300 {
        if m.get(name).await.map(|v| v.current_state).ok() == Some(want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{name} never reached {want}: {:?}", m.get(name).await.ok());
}

async fn wait_gone(m: &PipeManager, name: &str) {
    for _ in 0..300 {
        if matches!(m.get(name).await, Err(ControlError::NotFound(_))) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{name} was never removed: {:?}", m.get(name).await.ok());
}

#[tokio::test]
async fn regression_pipes_had_no_quota() {
    let store: Arc<dyn PipeStore> = Arc::new(MemoryStore::new());
    let m = PipeManager::open(
        store,
        ValidationContext::default(),
        Arc::new(Metrics::new()),
        RuntimeOptions::default(),
        ClusterOptions {
            max_pipes: 3,
            ..cluster("a")
        },
    )
    .await
    .unwrap();
    for name in ["a", "b", "c"] {
        m.create(name, def(name, "STOPPED"), Origin::Api)
            .await
            .unwrap();
    }
    let err = m
        .create("d", def("d", "STOPPED"), Origin::Api)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ControlError::QuotaExceeded { name, max: 3 } if name == "d"),
        "{err:?}"
    );
    assert!(err.to_string().contains("limit of 3 pipes"), "{err}");
    assert!(err.is_user_error() && !err.is_retryable());
    m.delete("a").await.unwrap();
    wait_gone(&m, "a").await;
    m.create("d", def("d", "STOPPED"), Origin::Api)
        .await
        .unwrap();
    m.shutdown(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn stopped_pipes_move_through_their_states_and_survive_reopening() {
    let store: Arc<dyn PipeStore> = Arc::new(MemoryStore::new());
    let m = manager(store.clone()).await;
    let view = m
        .create("a", def("a", "STOPPED"), Origin::Api)
        .await
        .unwrap();
    assert_eq!(view.current_state, CurrentState::Creating);
    wait_state(&m, "a", CurrentState::Stopped).await;
    assert!(matches!(
        m.create("a", def("a", "STOPPED"), Origin::Api).await,
        Err(ControlError::Conflict { .. })
    ));
    // Start: the broker is unreachable, so the pipe stays STARTING.
    let started = m.start("a").await.unwrap();
    assert_eq!(started.current_state, CurrentState::Starting);
    assert_eq!(started.record.desired_state, DesiredState::Running);
    wait_state(&m, "a", CurrentState::Starting).await;
    assert_eq!(
        m.start("a").await.unwrap().record.version,
        started.record.version,
        "starting a starting pipe changes nothing"
    );
    assert_eq!(
        m.stop("a").await.unwrap().current_state,
        CurrentState::Stopping
    );
    wait_state(&m, "a", CurrentState::Stopped).await;
    m.shutdown(Duration::from_secs(10)).await;

    let m = manager(store.clone()).await;
    let view = m.get("a").await.unwrap();
    assert_eq!(view.record.desired_state, DesiredState::Stopped);
    assert_eq!(view.current_state, CurrentState::Stopped);
    let del = m.delete("a").await.unwrap();
    assert_eq!(
        (del.record.desired_state, del.current_state),
        (DesiredState::Deleted, CurrentState::Deleting)
    );
    wait_gone(&m, "a").await;
    assert!(store.list().await.unwrap().is_empty());
    m.shutdown(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn an_interrupted_delete_finishes_at_boot_and_running_pipes_restart() {
    let store: Arc<dyn PipeStore> = Arc::new(MemoryStore::new());
    let mut gone = crate::store::sample("gone");
    gone.desired_state = DesiredState::Deleted;
    gone.change = Change::Delete;
    store.insert(&gone).await.unwrap();
    // At an unreachable broker and without secrets to fetch, so that it stays STARTING.
    let run = PipeRecord {
        definition: def("run", "RUNNING"),
        ..crate::store::sample("run")
    };
    store.insert(&run).await.unwrap();
    let m = manager(store.clone()).await;
    wait_gone(&m, "gone").await;
    wait_state(&m, "run", CurrentState::Starting).await;
    assert!(matches!(
        m.start("gone").await,
        Err(ControlError::NotFound(_))
    ));
    m.shutdown(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn tags_change_extensions_and_invalid_ones_are_refused() {
    let m = manager(Arc::new(MemoryStore::new())).await;
    m.create("a", def("a", "STOPPED"), Origin::Api)
        .await
        .unwrap();
    let bad = BTreeMap::from([("sluice:HttpDelivery".to_string(), "SOMETIMES".to_string())]);
    assert!(matches!(
        m.tag("a", &bad).await,
        Err(ControlError::Validation(_))
    ));
    let good = BTreeMap::from([("sluice:HttpDelivery".to_string(), "BATCH".to_string())]);
    let view = m.tag("a", &good).await.unwrap();
    assert_eq!(
        view.record.definition.tags.unwrap()["sluice:HttpDelivery"],
        "BATCH"
    );
    let view = m
        .untag("a", &["sluice:HttpDelivery".to_string()])
        .await
        .unwrap();
    assert_eq!(view.record.definition.tags, None);
    m.shutdown(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn a_deleted_pipe_refuses_changes_until_it_is_gone() {
    let m = manager(Arc::new(MemoryStore::new())).await;
    m.create("a", def("a", "RUNNING"), Origin::Api)
        .await
        .unwrap();
    m.delete("a").await.unwrap();
    // Either still deleting (Conflict) or already gone (NotFound), never a success.
    assert!(matches!(
        m.start("a").await,
        Err(ControlError::Conflict { .. } | ControlError::NotFound(_))
    ));
    wait_gone(&m, "a").await;
    m.shutdown(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn two_instances_see_each_others_writes_and_states() {
    let store: Arc<dyn PipeStore> = Arc::new(MemoryStore::new());
    let a = manager_as(store.clone(), "a").await;
    let b = manager_as(store.clone(), "b").await;
    a.create("p", def("p", "STOPPED"), Origin::Api)
        .await
        .unwrap();
    wait_state(&b, "p", CurrentState::Stopped).await;
    // Started on B: both instances start it, so both report STARTING.
    b.start("p").await.unwrap();
    wait_state(&a, "p", CurrentState::Starting).await;
    let version = a.get("p").await.unwrap().record.version;
    for _ in 0..300 {
        let seen = store
            .observed(Some("p"), Duration::from_secs(5))
            .await
            .unwrap();
        let starting = |id: &str| {
            seen.of("p").any(|o| {
                o.instance == id
                    && o.version == version
                    && matches!(o.phase, crate::store::Phase::Starting { .. })
            })
        };
        if starting("a") && starting("b") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let seen = store
        .observed(Some("p"), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(seen.of("p").count(), 2, "both run it: {seen:?}");
    // Stopped on A: STOPPED once both stopped it; deleted on B: gone everywhere.
    a.stop("p").await.unwrap();
    wait_state(&b, "p", CurrentState::Stopped).await;
    b.delete("p").await.unwrap();
    wait_gone(&a, "p").await;
    a.shutdown(Duration::from_secs(10)).await;
    b.shutdown(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn concurrent_writes_on_two_instances_have_one_outcome() {
    let store: Arc<dyn PipeStore> = Arc::new(MemoryStore::new());
    let a = manager_as(store.clone(), "a").await;
    let b = manager_as(store.clone(), "b").await;
    for i in 0..10 {
        let name = format!("p{i}");
        let (ra, rb) = tokio::join!(
            a.create(&name, def(&name, "STOPPED"), Origin::Api),
            b.create(&name, def(&name, "STOPPED"), Origin::Api)
        );
        assert!(ra.is_ok() != rb.is_ok(), "{ra:?} {rb:?}");
        let err = ra.err().or(rb.err()).unwrap();
        assert!(matches!(err, ControlError::Conflict { .. }), "{err:?}");
    }
    // Two updates of the same fields: the stored result is one of them, whole.
    let body = |batch: u32, text: &str| {
        parse_definition(
            &format!(
                r#"{{"RoleArn":"arn:aws:iam::123456789012:role/r","Description":"{text}",
                "SourceParameters":{{"SelfManagedKafkaParameters":{{"BatchSize":{batch}}}}}}}"#
            ),
            false,
        )
        .unwrap()
    };
    let (ba, bb) = (body(11, "from a"), body(22, "from b"));
    let (ra, rb) = tokio::join!(a.update("p0", &ba), b.update("p0", &bb));
    ra.unwrap();
    rb.unwrap();
    let stored = store.get("p0").await.unwrap().unwrap().definition;
    let got = (
        stored.description.clone().unwrap(),
        stored
            .source_parameters
            .as_ref()
            .and_then(|p| p.self_managed_kafka_parameters.as_ref())
            .and_then(|k| k.batch_size)
            .unwrap(),
    );
    assert!(
        got == ("from a".into(), 11) || got == ("from b".into(), 22),
        "{got:?}"
    );
    a.shutdown(Duration::from_secs(10)).await;
    b.shutdown(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn an_instance_that_stops_heartbeating_no_longer_counts() {
    let store: Arc<dyn PipeStore> = Arc::new(MemoryStore::new());
    let a = manager_as(store.clone(), "a").await;
    a.create("p", def("p", "STOPPED"), Origin::Api)
        .await
        .unwrap();
    wait_state(&a, "p", CurrentState::Stopped).await;
    // An instance that reported running it, then vanished without leaving.
    store.heartbeat("ghost").await.unwrap();
    let version = store.get("p").await.unwrap().unwrap().version;
    store
        .observe(&crate::store::Observation {
            pipe: "p".into(),
            instance: "ghost".into(),
            version: version - 1,
            phase: crate::store::Phase::Running,
            partitions: vec![0],
        })
        .await
        .unwrap();
    assert_eq!(
        a.get("p").await.unwrap().current_state,
        CurrentState::Creating
    );
    wait_state(&a, "p", CurrentState::Stopped).await;
    // And a deletion does not wait for it either.
    a.delete("p").await.unwrap();
    wait_gone(&a, "p").await;
    a.shutdown(Duration::from_secs(10)).await;
}
