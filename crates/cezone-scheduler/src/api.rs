//! The scheduler's gRPC face.

use cezone_domain::access::Action;
use cezone_platform::access::auth::{caller, permit};
use cezone_proto::scheduler::v1 as psch;
use cezone_proto::scheduler::v1::scheduler_service_server::SchedulerService;
use tokio::sync::Notify;
use tonic::{Request, Response, Status};

use crate::scheduler::Scheduler;

#[derive(Debug)]
pub struct SchedulerApi {
    pub scheduler: Scheduler,
    /// Wakes the loop after a manual run, so the plan is looked at again.
    pub kick: std::sync::Arc<Notify>,
}

#[tonic::async_trait]
impl SchedulerService for SchedulerApi {
    async fn list_audit(
        &self,
        req: tonic::Request<cezone_proto::common::v1::ListAuditRequest>,
    ) -> Result<tonic::Response<cezone_proto::common::v1::ListAuditResponse>, tonic::Status> {
        let who = cezone_platform::access::auth::caller(&req)?;
        let page = cezone_platform::access::audit_list::list(
            self.scheduler.db(),
            "scheduler",
            &who,
            req.get_ref(),
        )
        .await?;
        Ok(tonic::Response::new(page))
    }

    async fn list_runs(
        &self,
        req: Request<psch::ListRunsRequest>,
    ) -> Result<Response<psch::ListRunsResponse>, Status> {
        Ok(Response::new(
            self.scheduler.list(req.get_ref().pending_only).await?,
        ))
    }

    async fn list_notifications(
        &self,
        req: Request<psch::ListNotificationsRequest>,
    ) -> Result<Response<psch::ListNotificationsResponse>, Status> {
        let who = caller(&req)?;
        let notifications = self
            .scheduler
            .notifications(&who, req.get_ref().limit)
            .await?;
        Ok(Response::new(psch::ListNotificationsResponse {
            notifications,
        }))
    }

    async fn run_now(
        &self,
        req: Request<psch::RunNowRequest>,
    ) -> Result<Response<psch::RunRecord>, Status> {
        let who = caller(&req)?;
        permit(&who, &Action::RunSchedule, None)?;
        let r = req.into_inner();
        // Who asked is who is signed in, not what the request says.
        let by = who.acting_name(&r.requested_by);
        let record = self
            .scheduler
            .run_now(r.checkpoint.trim(), &by, &who)
            .await?;
        self.kick.notify_one();
        Ok(Response::new(record))
    }
}
