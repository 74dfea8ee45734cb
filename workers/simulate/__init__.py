"""``aidflow simulate``: a whole season of the real programme on the real calendar, time skipped.

The county's what-if tool. N synthetic applicants apply over the window; simulated
officials decide with seeded delays (working days, office hours), villagers object,
applicants correct returned applications, the bank returns some payments and the
villages correct the accounts. Everything runs through the real workflows,
activities, database and bank files; only time is skipped. At the end: the season
report and the deadline statistics (who missed which fixed date, at which step, by
how much).

How the clocks stay consistent
------------------------------
The dev server's time skipping (v2) gives every workflow its own virtual clock,
moved forward by a fast-forward on that workflow alone. Workflows that talk to
each other (applications, the season workflow, its payout batches) and the
simulated officials outside them must agree on the time, or a decision lands on
the wrong day. The design here is a conservative discrete-event simulation that
moves each clock lazily:

- The driver owns the simulated time. Every action of a simulated person is an
  event at an instant; the driver processes events in time order.
- Before an event touches a workflow, the driver fast-forwards that workflow to
  the event's instant (never backwards). Timers inside it (notice ends, fixed
  dates, payment limits) fire on the way, at their own instants, because the
  fast-forward stops at every timer and runs its workflow task and activities.
- Applications do not talk to each other, so events of different applications
  are processed concurrently, each application's in order. Events that touch the
  season workflow (funds request, funds arrival, account corrections, re-payment
  batches, the payout date, the season's end) are *shared*: the driver first
  finishes every event before them, then moves the season and every application
  it will message to the same instant, and processes the shared event alone. A
  notice's posting is shared too (its notice and its members); postings of different
  notices at one instant run together, as they share no workflow.
- A workflow starts at its simulated instant: the client starts it with a start
  delay, and the start carries a fast-forward of exactly that delay, so its first
  task (the "application received" event) already runs at the receipt instant.
- Payout batches are child workflows of the season; a child starts at its
  parent's virtual time, so batches need no clock of their own.

The price: a fast-forward per workflow per event (about seven per application),
and the simulation can only move forward from the wall clock (a season whose
window has passed cannot be simulated).

Where it lives
--------------
``scenario`` (what the county tries, who applies, when a person acts), ``clocks``
(every workflow's virtual clock), ``season`` (the events in time order and the
county's own acts), ``report`` (outcomes, deadline statistics, cost), ``stack`` (the
private server, database and worker, and one run). What each step's people do is
not here: the desks of ``workers/officials``, which the demo and the fault harness
drive too.
"""

from workers.officials import SimulationStalled
from workers.simulate.clocks import Clocks, NoticeClock, diagnose
from workers.simulate.report import DateMiss, SimulationResult, print_result, result_json
from workers.simulate.scenario import Applicant, Scenario, office_instant, rounds_to_run
from workers.simulate.season import SeasonSimulation
from workers.simulate.stack import run_simulation, simulation_stack, start_time_skipping_server

__all__ = [
    "Applicant",
    "Clocks",
    "DateMiss",
    "NoticeClock",
    "Scenario",
    "SeasonSimulation",
    "SimulationResult",
    "SimulationStalled",
    "diagnose",
    "office_instant",
    "print_result",
    "result_json",
    "rounds_to_run",
    "run_simulation",
    "simulation_stack",
    "start_time_skipping_server",
]
