"""The focus of a customer's message: the part retrieval and confidence should read.

Customers write "Hi team, my name is Dana Whitfield from Orbital Labs. We bought the Personal plan last week (order
#A-88213). How long do I have to ask for a refund? Thanks, Dana. Sent from my iPhone". Names, companies, order
numbers and devices are on no page, and confidence reads rare words a page lacks as a sign that the knowledge base
does not cover the question, so the whole message abstained where the bare question answers. The focus drops what
is never the question (greetings, self-introductions, pleasantries, thanks, sign-offs and the signature lines after
them, "Sent from my ...", @-mentions) and then keeps the question sentences: those with a question mark, or, when no
sentence has one, those that start like a question or ask for something ("please tell me ...", "I'd like to know
..."). A question that points back ("How do I fix this?", "What should I do?") keeps the sentence before it, which
says what "this" is. A message without any question is searched whole, less its courtesies. A bare message, one
statement and one question without any courtesy ("I lost my phone and my recovery codes. How do I get back into my
account?", typed into Slack or the API), is read whole: without greeting or sign-off it is no letter with a story,
and its statement is part of the question (the sample set's recovery question lost its page without it).

Why rules and not a library: the sentence splitters at hand (nltk's punkt needs a data download; mail-parser-reply
works on email bodies in the channel layer and already ran there) say where sentences end, not which one asks; the
rules are a few anchored patterns. The customer's full text is still what is stored, answered and shown; only the
search reads the focus. Linear and bounded: at most `MAX_CHARS` characters and `MAX_SENTENCES` sentences are read,
every pattern is anchored or bounded, and at most `MAX_QUESTIONS` question sentences are kept.
"""

from __future__ import annotations

import re

MAX_CHARS = 20_000
MAX_SENTENCES = 400
MAX_QUESTIONS = 3
BARE_SENTENCES = 2  # a message of two sentences and no courtesy is read whole

_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_MENTION = re.compile(r"(?<![\w@])@[\w.-]{1,80}:?")
_LEAD = re.compile(
    r"^(?:(?:hi|hello|hey|hiya|dear|greetings|good (?:morning|afternoon|evening|day))\b[^,:!.?]{0,40}[,:!.-]+\s*"
    r"|(?:quick|one|another|small|short|random) (?:q|qn|question|one)\b[^,:!?]{0,20}[,:!.-]+\s*)+",
    re.IGNORECASE,
)
_GREETING = re.compile(
    r"^(?:(?:hi|hello|hey|hiya|dear|greetings|yo|good (?:morning|afternoon|evening|day))\b[^.?!]{0,40}"
    r"|to whom it may concern)[,:!.]*$",
    re.IGNORECASE,
)
# "I'm Dana Whitfield (Orbital Labs)", "This is Sven from ...", "Olu here": a name, then nothing or where from;
# "This is Ubuntu 22.04 and ..." is not one
_INTRO = re.compile(
    r"^(?:(?i:my name is|i['\u2019]?m|i am|this is|it'?s)\s+(?:[A-Z][\w'-]*\s?){1,3}"
    r"(?:$|[,.(!-]|(?i:from|at|with|here)\b)|[A-Z][\w'-]* here\b)"
)
_SIGN_OFF = re.compile(
    r"^(?:thanks|thank you|thx|ty|tia|cheers|regards|kind regards|best regards|warm regards|best wishes|best|"
    r"many thanks|sincerely|yours|all the best|bye|have a (?:nice|good|great) (?:day|week|weekend))\b",
    re.IGNORECASE,
)
_PLEASANTRY = re.compile(
    r"^(?:sent from my\b|any help\b|hope (?:you|this|that|all)\b|sorry (?:if|to|for)\b|please excuse\b|"
    r"happy to (?:jump|hop|chat)\b|looking forward\b|i'?d (?:really )?appreciate\b)",
    re.IGNORECASE,
)
_SMALL_TALK = re.compile(
    r"^(?:how are you|how are things|how's it going|how have you been|hope you're well|what's up)\b[^?]{0,30}\?*$",
    re.IGNORECASE,
)
_ASKS = re.compile(
    r"^(?:how|what|why|when|where|which|who|whom|whose|can|could|would|will|should|is|are|am|was|were|do|does|did|"
    r"have|has|may|might|shall|isn'?t|aren'?t|don'?t|doesn'?t|won'?t|can'?t|explain)\b"
    r"|\b(?:please (?:tell|explain|advise|confirm|let me know|help)|(?:i'?d|i would) like to know|"
    r"i (?:want|need) to know|i(?:'?m| am)? wonder(?:ing)?|tell me|let me know|help me)\b",
    re.IGNORECASE,
)
_POINTS_BACK = re.compile(r"\b(?:this|that|it|these|those|they|them)\b", re.IGNORECASE)
POINTING_WORDS = 6  # "How can I fix this issue?" points back; "What does E1550 mean and how do I fix it?" does not
# a question made only of these words says nothing by itself: "What should I do?", "How to resolve?", "Any ideas?"
# (a word list of our own: scikit-learn's stop words would load scikit-learn into the service)
_EMPTY = frozenset((
    "what", "how", "why", "when", "where", "which", "who", "should", "shall", "can", "could", "would", "will", "do",
    "does", "did", "is", "are", "am", "be", "i", "we", "you", "me", "us", "my", "to", "a", "an", "the", "it",
    "this", "that", "now", "then", "so", "any", "anything", "else", "next", "there", "here", "please", "one", "go",
    "fix", "resolve", "solve", "ideas", "idea", "help", "happen", "happens", "advice", "suggestions", "thoughts",
))  # fmt: skip
_WORD = re.compile(r"\w+")


def question_focus(text: str) -> str:
    """The sentences of `text` that ask (see the module docstring), newline-free; `text` itself when none is left."""
    text = text[:MAX_CHARS]
    sentences = _sentences(text)
    kept = _without_courtesies(sentences)
    if not kept:
        return text
    if len(kept) <= BARE_SENTENCES and kept == _sentences(text, courtesies=False):
        return " ".join(kept)  # nothing but a statement and a question: the question with its context
    asking = [i for i, sentence in enumerate(kept) if "?" in sentence]
    if not asking:
        asking = [i for i, sentence in enumerate(kept) if _ASKS.search(sentence)]
    if not asking:
        return " ".join(kept)
    chosen: list[int] = []
    for i in asking[:MAX_QUESTIONS]:
        if i > 0 and i - 1 not in chosen and _points_back(kept[i]):
            chosen.append(i - 1)
        chosen.append(i)
    return " ".join(kept[i] for i in chosen)


def _sentences(text: str, courtesies: bool = True) -> list[str]:
    """The sentences of `text`, whitespace-normalised; without @-mentions and leading greetings unless `courtesies`
    is false."""
    parts = []
    for part in _SENTENCE.split(_MENTION.sub(" ", text) if courtesies else text, maxsplit=MAX_SENTENCES):
        part = " ".join(part.split())
        part = _LEAD.sub("", part) if courtesies else part
        if part:
            parts.append(part)
    return parts[:MAX_SENTENCES]


def _without_courtesies(sentences: list[str]) -> list[str]:
    """Greetings, self-introductions and pleasantries go; a short sign-off ("Thanks,", "Kind regards,") and the
    short lines after it (a name, a job title, a company) are the signature and go too."""
    kept: list[str] = []
    signature = False
    for sentence in sentences:
        asks = "?" in sentence
        short = len(_WORD.findall(sentence)) <= 8
        if not asks and _SIGN_OFF.match(sentence) and short:
            signature = True
            continue
        if signature and short and not asks:
            continue
        signature = False
        if _SMALL_TALK.match(sentence):
            continue
        if not asks and (_GREETING.match(sentence) or _INTRO.match(sentence) or _PLEASANTRY.match(sentence)):
            continue
        kept.append(sentence)
    return kept


def _points_back(question: str) -> bool:
    """A question that needs the sentence before it: a short one that points back ("How can I fix this?") or one that
    names nothing ("What should I do?")."""
    words = _WORD.findall(question.lower())
    return all(word in _EMPTY for word in words) or (
        len(words) <= POINTING_WORDS and _POINTS_BACK.search(question) is not None
    )


_SCRIPT = re.compile(r"<(script|style)\b[^>]{0,500}>.{0,5000}?</\1\s*>", re.I | re.S)
_HTML_TAGS = (
    "a|abbr|audio|b|body|br|button|center|code|div|em|embed|font|form|h[1-6]|head|html|i|iframe|img|input|li|link|"
    "meta|object|ol|p|pre|source|span|strong|svg|table|tbody|td|th|thead|tr|u|ul|video"
)
_TAG = re.compile(rf"</?(?:{_HTML_TAGS})\b[^<>]{{0,500}}>", re.I)


def search_text(question: str) -> str:
    """The question as retrieval and confidence read it: its focus, without markup. Script and style blocks and
    tags go (a pasted `<img onerror=...>` would otherwise make an answerable question look off-topic: its rare
    words are on no page; Slack's own markup is turned into words by the Slack adapter); then greetings,
    introductions, stories and sign-offs go (`knowledge.focus`: names, order numbers and "Sent from my iPhone" are
    on no page either). The customer's text itself is kept as asked for the record and the reply."""
    text = _TAG.sub(" ", _SCRIPT.sub(" ", question))
    text = " ".join(question_focus(text).split())
    return text or question
