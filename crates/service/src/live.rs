//! Live queries on the request pipeline: a subscription is a request like
//! any other, from the user as they stand now, at the user's request rate,
//! under the time limit, and logged when slow. Its snapshot is bounded by
//! the same row and byte caps as a query's answer (see
//! `QuerySession::subscribe`).

use std::time::Instant;

use quiver_common::ErrorCode;
use quiver_live::ConnectionId;
use quiver_query::{Snapshot, Subscribed};
use tokio_util::task::AbortOnDropHandle;

use crate::auth::Principal;
use crate::error::ServiceError;
use crate::request::{RequestService, deadline, elapsed_ms, log_if_slow, within};

/// One subscription a connection asks for.
#[derive(Debug, Clone)]
pub struct LiveRequest {
    pub connection: ConnectionId,
    /// The client's name for it, unique on its connection.
    pub subscription_id: String,
    pub sql: String,
    /// The options as the client sent them, shown in `system.live_queries`.
    pub options: String,
    pub snapshot: Snapshot,
}

impl RequestService {
    /// Starts a live query for `principal`. The user is checked as they
    /// stand now: a role changed since the connection signed in counts,
    /// and a user signed out or gone is refused. Planning and the
    /// snapshot run where queries run. Returns the principal as it stands
    /// now, for the connection to keep.
    pub async fn subscribe(
        &self,
        principal: &Principal,
        request: LiveRequest,
    ) -> Result<(Principal, Subscribed), ServiceError> {
        let start = Instant::now();
        let config = self.config.get();
        let limits = &config.limits;
        let deadline = deadline(start, limits);
        let principal = self.auth.current(principal)?;
        self.rate.check(&principal.user, limits)?;
        let session = self.session(&principal, None)?;
        let sql = request.sql.clone();
        let mut task = AbortOnDropHandle::new(self.query_runtime.spawn(async move {
            session
                .subscribe(
                    request.connection,
                    &request.subscription_id,
                    &request.sql,
                    &request.options,
                    request.snapshot,
                )
                .await
        }));
        let outcome = within(deadline, &config, async {
            match (&mut task).await {
                Ok(subscribed) => subscribed.map_err(ServiceError::from),
                Err(e) => Err(ServiceError::new(
                    ErrorCode::SubscriptionFailed,
                    e.to_string(),
                )),
            }
        })
        .await;
        if outcome.is_err() && !task.is_finished() {
            // Past the time limit: the start is stopped, and what it
            // registered withdrawn, before the client hears of it.
            task.abort();
            let _ = (&mut task).await;
        }
        let took_ms = elapsed_ms(start);
        log_if_slow(
            config.logging.slow_query_ms,
            &principal.user,
            &sql,
            took_ms,
            outcome.is_err(),
        );
        Ok((principal, outcome?))
    }
}
