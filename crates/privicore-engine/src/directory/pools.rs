//! Create directory voting pool (docs/api/directory.md §3.17) at acceptance: the shapes and
//! bounds, and the caller's standing. The pool opens when the command runs
//! (`crate::voting`).

use super::*;
use privicore_domain::governance::pool::check_text;
use privicore_domain::governance::voting::{
    check_attempts, check_percentage, check_strategy, check_time_limit,
};
use privicore_domain::governance::{Strategy, Voters, VotingRules};

/// Quorum sizes of a directory pool: it counts profiles, not devices.
const QUORUM: std::ops::RangeInclusive<i64> = 1..=10_000;
/// Longest `nonce`.
const MAX_NONCE: usize = 128;

/// Create directory voting pool as sent (§3.17); `None` = the default.
#[derive(Debug, Clone, Default)]
pub struct DirectoryPoolInput {
    pub directory_id: Uuid,
    pub title: String,
    pub question: String,
    pub voters: Vec<ProfileId>,
    pub strategy: Option<String>,
    pub percentage: Option<i64>,
    pub quorum_size: Option<i64>,
    pub time_limit: Option<i64>,
    pub attempts: Option<i64>,
    pub nonce: Option<String>,
}

impl DirectoryPoolInput {
    /// The pool's rules: consensus, quorum 1, 600 s, one attempt unless given.
    fn rules(&self) -> Result<VotingRules, Error> {
        let strategy = match &self.strategy {
            Some(s) => check_strategy(s, "strategy")?,
            None => Strategy::Consensus,
        };
        let percentage = check_percentage(self.percentage, "percentageRequired")?;
        let percentage = match strategy {
            Strategy::MinimumPercentage => Some(percentage.ok_or_else(|| {
                Error::new(Reason::VotingInvalidPercentage).with_field("percentageRequired")
            })?),
            _ => None,
        };
        let quorum_size = self.quorum_size.unwrap_or(1);
        if !QUORUM.contains(&quorum_size) {
            return Err(Error::new(Reason::VotingInvalidQuorumSize).with_field("quorumSize"));
        }
        Ok(VotingRules {
            strategy,
            percentage,
            quorum_size: quorum_size as u32,
            time_limit: check_time_limit(self.time_limit.unwrap_or(600), "timeLimit")?,
            max_attempts: check_attempts(self.attempts.unwrap_or(1), "numberOfAttempts")?,
            // Directory pools choose their voters by profile (`Pool::voter_profiles`).
            voters: Voters::AllAuthenticators,
        })
    }
}

impl Engine {
    /// §3.17: 202 with the command id, which is the pool id.
    pub async fn create_directory_voting(
        &self,
        caller: &Caller,
        input: DirectoryPoolInput,
    ) -> Result<CommandId, Error> {
        check_text(&input.title, 120, Reason::VotingInvalidTitle, "title")?;
        check_text(
            &input.question,
            2000,
            Reason::VotingInvalidQuestion,
            "question",
        )?;
        if input
            .nonce
            .as_ref()
            .is_some_and(|n| n.chars().count() > MAX_NONCE)
        {
            return Err(Error::out_of_range("nonce", "at most 128 characters"));
        }
        let rules = input.rules()?;
        let mut voters: Vec<ProfileId> = Vec::with_capacity(input.voters.len());
        for v in &input.voters {
            if !voters.contains(v) {
                voters.push(*v);
            }
        }
        let most = self.config.directories.members_per_directory;
        if voters.len() as u64 > most {
            return Err(Error::out_of_range(
                "voterProfileIds",
                format!("at most {most} profiles"),
            ));
        }
        self.require(caller, input.directory_id, Action::CreateVotingPool)
            .await?;
        let command = self.command_for(
            caller,
            CommandPayload::CreateDirectoryVoting {
                directory_id: input.directory_id,
                title: input.title,
                question: input.question,
                voters,
                rules,
                nonce: input.nonce,
            },
        );
        self.accept(command).await
    }
}
