"""Card payout: the season pays; after a returned payment the office the step names
corrects the account at the application's village."""

from __future__ import annotations

import uuid
from datetime import datetime

from models.application import Actor, ApplicationStatus, Places
from models.domain import ROLE_NAME_ZH
from models.programme import PayoutStep
from workers.officials import people
from workers.officials.base import Case, Desk, Floor, Season


class PayoutDesk(Desk[PayoutStep]):
    kind = "payout"

    def corrector(self, places: Places) -> Actor:
        return people.official(self.step.account_corrected_by, places)

    async def act(self, floor: Floor, st: ApplicationStatus) -> bool:
        """A returned payment's account is corrected (the season pays the rest)."""
        what = "account"
        if st.stage not in self.step.stages_within or not floor.due(st, what, 0.5, 1.5):
            return False
        await floor.api.correct_account(
            st.workflow_id,
            self.corrector(st.places),
            bank_name=people.BANK,
            account_number=people.account_number(floor.draw(st, what)),
            account_holder="户主",
            request_id=floor.request_id(st, what),
        )
        who = self.step.account_corrected_by
        floor.sent(
            st,
            what,
            f"{ROLE_NAME_ZH.get(who, who.value)}更正一卡通账户 / {who.value.replace('_', ' ')} corrected the account",
        )
        return True

    # ------------------------------------------------------------- simulator

    def settled(self, season: Season, a: Case, stage: str, at: datetime) -> None:
        """After a batch: a returned payment waits for its village's correction (a
        shared event: the correction goes to the season's next re-payment batch)."""
        if stage not in self.step.stages_within:
            return
        season.counts["bank returns"] += 1
        a.opened["account"] += 1
        visit = a.opened["account"]
        season.at(
            season.delay(at, "account_correction", a.draw(f"delay/account/{visit}")),
            "account correction",
            lambda t: self.correct(season, a, t),
            shared=True,
        )

    async def correct(self, season: Season, a: Case, at: datetime) -> None:
        await season.everyone_to(at, [a])
        account = people.account_number(a.draw(f"account/{a.opened['account']}"))
        request_id = uuid.uuid4().hex
        await season.again(
            lambda: season.api.correct_account(
                a.workflow_id,
                self.corrector(a.form.places),
                bank_name=people.BANK,
                account_number=account,
                account_holder=a.form.account_holder,
                request_id=request_id,
            )
        )
        season.counts["requests"] += 1
        season.repay(a, at)
