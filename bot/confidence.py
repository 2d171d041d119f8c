"""The two confidence cut-offs, one definition for every layer that reads a calibrated confidence.

The knowledge engine abstains below `ABSTAIN_THRESHOLD`; the conversation service marks an answer unsure and offers
a ticket below `LOW_CONFIDENCE_THRESHOLD`; the console bands, the review queue, the gap backlog and the weekly
report cut at the same values. Operators change them with the environment variables of the same names (the
composition root passes the settings down); these are the defaults, chosen on the answer eval (README, "Answer
quality"): a confidently wrong answer is the worst outcome, so both sit on the strict side.
"""

from typing import Final

ABSTAIN_THRESHOLD: Final = 0.2
LOW_CONFIDENCE_THRESHOLD: Final = 0.85
