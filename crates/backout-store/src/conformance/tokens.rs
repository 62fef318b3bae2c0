//! Conformance story about API tokens: created with their event, read back exactly (digest
//! included), listed oldest first, revoked once with an event, and the refusals around them.

use serde_json::json;

use crate::conformance::{T0, assert_not_found, last_seq};
use crate::errors::{Entity, StoreError};
use crate::event::NewEvent;
use crate::store::Store;
use crate::token::{NewToken, Role, Token};

fn new_token(id: &str, user: &str, role: Role, at: i64) -> NewToken {
    NewToken {
        id: id.to_owned(),
        user: user.to_owned(),
        role,
        secret_hash: format!("sha256:{id}-digest"),
        created_at_ms: at,
        created_by: "root".to_owned(),
    }
}

fn created(token: &NewToken) -> NewEvent {
    NewEvent::new("token_created", &token.created_by, token.created_at_ms)
        .payload(json!({ "token": token.id, "user": token.user, "role": token.role }))
}

/// Tokens round-trip with every role, list oldest first, revoke once (with an event, in the
/// same transaction), and refuse duplicates and unknown ids, appending nothing when they do.
pub async fn tokens(store: &dyn Store) -> Result<(), StoreError> {
    let before = last_seq(store).await?;
    let listed_before = store.list_tokens().await?.len();
    let mut made = Vec::new();
    for (n, role) in Role::ALL.iter().enumerate() {
        let token = new_token(
            &format!("tok-conf-{n}"),
            &format!("User{n}@Example.com"),
            *role,
            T0 + n as i64,
        );
        let event = store.create_token(&token, &created(&token)).await?;
        assert_eq!(event.kind, "token_created");
        assert!(
            !event.payload.to_string().contains("digest"),
            "the journal never holds a token's digest"
        );
        made.push(token);
    }
    assert_eq!(
        last_seq(store).await?,
        before + Role::ALL.len() as u64,
        "one event per token"
    );
    let expected = |t: &NewToken| Token {
        id: t.id.clone(),
        user: t.user.clone(),
        role: t.role,
        secret_hash: t.secret_hash.clone(),
        created_at_ms: t.created_at_ms,
        created_by: t.created_by.clone(),
        revoked_at_ms: None,
        revoked_by: None,
    };
    for token in &made {
        assert_eq!(store.get_token(&token.id).await?, expected(token));
    }
    let listed = store.list_tokens().await?;
    assert_eq!(listed.len(), listed_before + made.len());
    let ours: Vec<&str> = listed
        .iter()
        .filter(|t| t.id.starts_with("tok-conf-"))
        .map(|t| t.id.as_str())
        .collect();
    let ids: Vec<&str> = made.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ours, ids, "oldest first");

    let seq = last_seq(store).await?;
    match store.create_token(&made[0], &created(&made[0])).await {
        Err(StoreError::Conflict {
            entity: Entity::Token,
            id,
        }) => assert_eq!(id, made[0].id),
        other => panic!("expected Conflict for a duplicate token, got {other:?}"),
    }
    assert_eq!(
        last_seq(store).await?,
        seq,
        "a refused create appends nothing"
    );

    let revoked = store
        .revoke_token(
            &made[1].id,
            "root",
            T0 + 500,
            &NewEvent::new("token_revoked", "root", T0 + 500)
                .payload(json!({ "token": made[1].id })),
        )
        .await?;
    assert_eq!(revoked.kind, "token_revoked");
    assert_eq!(revoked.seq, seq + 1);
    let now = store.get_token(&made[1].id).await?;
    assert!(now.is_revoked());
    assert_eq!(now.revoked_at_ms, Some(T0 + 500));
    assert_eq!(now.revoked_by.as_deref(), Some("root"));
    assert!(!store.get_token(&made[0].id).await?.is_revoked());

    let seq = last_seq(store).await?;
    match store
        .revoke_token(
            &made[1].id,
            "root",
            T0 + 600,
            &NewEvent::new("token_revoked", "root", T0 + 600),
        )
        .await
    {
        Err(StoreError::Invalid { .. }) => {}
        other => panic!("expected Invalid when revoking twice, got {other:?}"),
    }
    assert_eq!(
        store.get_token(&made[1].id).await?.revoked_at_ms,
        Some(T0 + 500),
        "the first revocation stands"
    );
    assert_not_found(
        store.get_token("tok-conf-missing").await,
        Entity::Token,
        "tok-conf-missing",
    );
    assert_not_found(
        store
            .revoke_token(
                "tok-conf-missing",
                "root",
                T0,
                &NewEvent::new("token_revoked", "root", T0),
            )
            .await,
        Entity::Token,
        "tok-conf-missing",
    );
    assert_eq!(
        last_seq(store).await?,
        seq,
        "refused revocations append nothing"
    );
    Ok(())
}
