//! Progress reports of running jobs: an assignee records where it is (a rule group's alert
//! `for` state, for one) under its fencing token, so that whoever is assigned the job next
//! resumes from there. Like a renewal, a report from a deposed assignee is refused.

use super::jobs::check_token;
use super::{ClusterState, Rejection, Response};
use crate::types::NodeId;
use crate::FencingToken;

impl ClusterState {
    pub(super) fn report_job_progress(
        &mut self,
        token: &FencingToken,
        node_id: NodeId,
        progress: &str,
        now_ms: i64,
    ) -> Result<Response, Rejection> {
        let job = self.job_mut(&token.job_id)?;
        check_token(job, token, node_id, now_ms)?;
        job.progress = progress.to_string();
        Ok(Response::Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Command, JobState, Request};
    use super::*;

    fn apply(s: &mut ClusterState, c: Command) -> Response {
        s.apply(3, &Request::new(c))
    }

    fn assign(s: &mut ClusterState, node_id: NodeId, expiry: i64, now: i64) -> FencingToken {
        let r = apply(
            s,
            Command::AssignJob {
                job_id: "g".into(),
                node_id,
                lease_expiry_ms: expiry,
                now_ms: now,
            },
        );
        match r {
            Response::Assigned { token } => token,
            other => panic!("not assigned: {other:?}"),
        }
    }

    fn report(token: &FencingToken, node_id: NodeId, p: &str, now: i64) -> Command {
        Command::ReportJobProgress {
            token: token.clone(),
            node_id,
            progress: p.into(),
            now_ms: now,
        }
    }

    #[test]
    fn progress_survives_reassignment_and_a_deposed_assignee_cannot_overwrite_it() {
        let mut s = ClusterState::default();
        let create = Command::CreateJob {
            job_id: "g".into(),
            kind: "rule-group".into(),
            spec: "f;g".into(),
            now_ms: 0,
        };
        assert_eq!(apply(&mut s, create), Response::Ok);
        let old = assign(&mut s, 2, 100, 10);
        assert_eq!(apply(&mut s, report(&old, 2, "v1", 50)), Response::Ok);
        assert_eq!(s.jobs["g"].progress, "v1");
        // The lease lapses; node 3 takes over and sees node 2's last report.
        let new = assign(&mut s, 3, 300, 120);
        assert!(matches!(
            s.jobs["g"].state,
            JobState::Assigned { node_id: 3, .. }
        ));
        assert_eq!(s.jobs["g"].progress, "v1");
        match apply(&mut s, report(&old, 2, "stale", 130)) {
            Response::Rejected {
                reason: Rejection::StaleFencingToken { .. },
            } => {}
            other => panic!("a deposed assignee's report must be refused: {other:?}"),
        }
        match apply(&mut s, report(&new, 2, "wrong node", 130)) {
            Response::Rejected {
                reason: Rejection::NotAssignee { .. },
            } => {}
            other => panic!("only the assignee reports: {other:?}"),
        }
        match apply(&mut s, report(&new, 3, "late", 300)) {
            Response::Rejected {
                reason: Rejection::LeaseExpired { .. },
            } => {}
            other => panic!("no report after the lease: {other:?}"),
        }
        assert_eq!(apply(&mut s, report(&new, 3, "v2", 200)), Response::Ok);
        assert_eq!(s.jobs["g"].progress, "v2");
    }

    #[test]
    fn jobs_written_before_progress_existed_decode_with_none() {
        let old = r#"{"id":"g","kind":"rule-group","spec":"","created_at_ms":0,"attempts":0,"state":{"state":"pending"}}"#;
        let job: crate::Job = serde_json::from_str(old).expect("old job decodes");
        assert_eq!(job.progress, "");
    }
}
