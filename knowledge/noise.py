"""Customer-style noise around a question, for the answer eval (`eval answers DIR --noise SEED`).

Customers do not ask one-line questions: an email still has a greeting, a self-introduction, a story with names,
order numbers and devices, thanks and "Sent from my iPhone" after the quoted history and signature are trimmed; a
Slack message has mentions and chatter. None of those words is on any page, so they test whether retrieval and
confidence find the question inside the message. `wrap` builds such a message around a question from the pools
below (every name, company and order number is invented), seeded, so a run is repeatable. The question's own words
are never changed, so a drop in the figures is the noise's doing, not a paraphrase's.
"""

from __future__ import annotations

import random

_FIRST = (
    "Dana", "Priya", "Jorge", "Marta", "Sven", "Olu", "Bethan", "Harriet", "Kwame", "Felix", "Ingrid", "Owen",
    "Siobhan", "Giorgos", "Wanjiru", "Lukas", "Zoe", "Mateo", "Aiko", "Tariq", "Elodie", "Ruairi", "Nadia", "Bram",
)  # fmt: skip
_LAST = (
    "Whitfield", "Raman", "Albarran", "Kowalczyk", "Lindgren", "Adebayo", "Rhys-Jones", "Ashby", "Mensah", "Brandt",
    "Solberg", "Pryce", "Murphy", "Papadakis", "Kamau", "Meier", "Fairbanks", "Rossi", "Tanaka", "Haddad",
)  # fmt: skip
_COMPANY = (
    "Orbital Labs", "Lindqvist Dental", "Harbourline Studios", "Kestrel Accounting", "Pike & Sons Ltd",
    "Nordlys Architects", "Foxglove & Finch", "Greenway Logistics", "Sokoni Traders", "Pinecrest Analytics",
    "Brightwater Utilities", "Quillmark Legal", "Little Acorns Preschool", "Vermeulen IT", "Blue Heron Media",
)  # fmt: skip
_DEVICE = (
    "iPhone", "iPhone 15 Pro", "Pixel 8", "Galaxy S23", "OnePlus 12", "iPad Air", "MacBook Air", "ThinkPad X1",
    "Dell XPS 13", "Surface Pro", "HP Pavilion", "Chromebook",
)  # fmt: skip
_DAY = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "the weekend", "yesterday", "last week")
_GREETING = (
    "Hi team,", "Hello,", "Hi there,", "Dear Sir or Madam,", "Good morning,", "Hey!", "Hi Acme folks!",
    "To whom it may concern,", "@here quick q:", "@channel hey all,", "hi,", "Good afternoon,", "",
)  # fmt: skip
_INTRO = (
    "My name is {name} from {company}.",
    "I'm {name}, I look after IT at {company}.",
    "{first} here, from {company}.",
    "This is {name} ({company}, customer since 2019).",
    "I work in the finance team at {company}.",
    "",
)
_STORY = (
    "We bought it last week (order #{order}) and I'm not happy with it.",
    "I'm writing from my {device} because my laptop is with our IT person {first2}.",
    "My colleague {first2} asked me to check this before our meeting on {day}.",
    "This came up on {day} and nobody in the office knew.",
    "I already searched the help pages but couldn't find it.",
    "Our reference is #{order}, in case you need it.",
    "Sorry if this has been asked before, I'm new to all this.",
    "It's been bugging me all week.",
    "My manager {first2} needs an answer by {day}.",
    "We are a small team of {size} people, so I do everything myself.",
)
_AFTER = (
    "I'd really appreciate a quick reply.",
    "Any help appreciated.",
    "Happy to jump on a call if easier.",
    "No rush, but it would help a lot.",
    "",
)
_SIGN_OFF = (
    "Thanks in advance,\n{first}",
    "Cheers, {first}",
    "Kind regards,\n{name}\n{company}",
    "Many thanks!",
    "Best,\n{first}",
    "thx",
    "Thank you and have a nice day,\n{name}",
    "Regards, {name}, Operations, {company}",
    "",
)
_DEVICE_LINE = ("Sent from my {device}", "Sent from my {device}. Please excuse typos.", "", "", "")


def wrap(question: str, rng: random.Random) -> str:
    """The question inside a message a customer might send: greeting, introduction, one or two sentences of story
    (before or after the question), thanks, sign-off, device line; each part drawn from its pool, some empty."""
    first, first2 = rng.sample(_FIRST, 2)
    values = {
        "first": first,
        "first2": first2,
        "name": f"{first} {rng.choice(_LAST)}",
        "company": rng.choice(_COMPANY),
        "device": rng.choice(_DEVICE),
        "day": rng.choice(_DAY),
        "order": f"{rng.choice('ABCKX')}-{rng.randrange(10000, 99999)}",
        "size": str(rng.randrange(3, 40)),
    }
    story = [line.format(**values) for line in rng.sample(_STORY, rng.randint(1, 2))]
    before, after = (story, []) if rng.random() < 0.7 else ([], story)  # the question in the middle, sometimes
    body = [rng.choice(_INTRO).format(**values), *before, question.strip(), *after, rng.choice(_AFTER)]
    parts = [
        rng.choice(_GREETING),
        " ".join(part for part in body if part),
        rng.choice(_SIGN_OFF).format(**values),
        rng.choice(_DEVICE_LINE).format(**values),
    ]
    return "\n\n".join(part for part in parts if part)
