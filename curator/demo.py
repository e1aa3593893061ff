"""The offline demo set: a deterministic, clearly labelled SYNTHETIC dataset.

The shared real datasets may not be redistributed, so a fresh machine needs data of the
project's own. These records are generated from templates with a fixed seed (the same bytes
on every machine, so re-running the demo is a no-op). Every source name starts with
"synthetic-". Like real distilled data they contain what curation is for: a homogeneous
one-word-answer blob (as P3 was for GPT4All), refusals, repeated identity questions, answers
cut off mid-sentence and exact duplicates, beside varied how-to and explanation pairs.
"""
from __future__ import annotations

import random
from collections.abc import Iterator

SEED = 42

_TOPICS = {
    "cooking": (["bake sourdough bread", "make a tomato sauce", "roast vegetables", "cook rice on the stove",
                 "make pancakes", "prepare a vegetable curry", "grill salmon", "make a lentil soup"],
                ["oven", "pan", "salt", "dough", "simmer", "stir", "taste", "heat"]),
    "python": (["read a CSV file", "sort a list of dictionaries", "reverse a string", "merge two dictionaries",
                "write a unit test", "parse JSON", "remove duplicates from a list", "time a function"],
               ["function", "list", "import", "loop", "variable", "module", "print", "return"]),
    "gardening": (["grow tomatoes", "prune a rose bush", "start a compost pile", "repot a houseplant",
                   "plant garlic", "keep aphids away", "water succulents", "grow basil indoors"],
                  ["soil", "roots", "water", "sunlight", "leaves", "seeds", "mulch", "pot"]),
    "fitness": (["start running", "do a proper squat", "stretch after a workout", "build a home workout",
                 "improve my push-ups", "train for a 10k", "warm up before lifting", "recover from soreness"],
                ["muscles", "breathing", "reps", "posture", "rest", "knees", "core", "pace"]),
    "finance": (["make a monthly budget", "save for an emergency fund", "pay off a credit card",
                 "start investing", "track my expenses", "plan for retirement", "lower my bills",
                 "understand compound interest"],
                ["income", "savings", "interest", "expenses", "account", "goal", "debt", "fund"]),
    "travel": (["pack a carry-on bag", "find cheap flights", "plan a road trip", "avoid jet lag",
                "travel with a toddler", "choose travel insurance", "plan a weekend in Rome",
                "stay safe in a new city"],
               ["itinerary", "luggage", "passport", "booking", "hotel", "train", "map", "schedule"]),
}

_CONCEPTS = ["photosynthesis", "inflation", "gravity", "machine learning", "the water cycle", "vaccines",
             "blockchain", "black holes", "democracy", "supply and demand", "plate tectonics", "DNA",
             "the internet", "climate change", "electricity", "evolution"]
_AUDIENCES = ["a five-year-old", "a high school student", "a busy manager", "my grandmother",
              "a software engineer", "someone who has never heard of it"]

_REFUSAL_PROMPTS = ["Write a story about a dragon who loves {x}.", "What do you think about {x}?",
                    "Give me your personal opinion on {x}.", "Tell me a joke about {x}.",
                    "Predict the stock price of {x} next year.", "How do I pick a lock on a {x}?"]
_REFUSALS = ["As an AI language model, I cannot have personal opinions about {x}.",
             "I'm sorry, but I can't help with that request about {x}.",
             "As an AI language model, I am not able to do that. However, I can share general information about {x} if you like.",
             "I cannot assist with that. It would not be appropriate for me to comment on {x}."]

_REVIEW_PARTS = (["The plot was", "The acting was", "The food was", "The service was", "The battery life is",
                  "The soundtrack was", "The delivery was", "The staff were"],
                 ["wonderful", "terrible", "surprisingly good", "a complete waste of time", "excellent",
                  "disappointing", "fantastic", "awful"],
                 ["and I would recommend it.", "and I will not come back.", "overall.", "from start to finish.",
                  "for the price.", "if you ask me."])
_POSITIVE = {"wonderful", "surprisingly good", "excellent", "fantastic"}
_ONE_WORD_TEMPLATES = ["Review: {r}\nIs this review positive or negative?",
                       "{r}\nDid the reviewer like it? Answer yes or no.",
                       "Here is a review: {r}\nWhat is the sentiment of this review?"]

_IDENTITY_PROMPTS = ["Who are you?", "What is your name?", "Who created you?", "Are you ChatGPT?",
                     "What are you?", "Introduce yourself.", "who are you", "Tell me about yourself."]
_IDENTITY_ANSWER = "I am a synthetic demo assistant created for the curator demo dataset."


def _howto(rng: random.Random, topic: str, task: str, words: list[str]) -> str:
    picked = rng.sample(words, 4)
    steps = [f"{i}. {step}" for i, step in enumerate([
        f"Gather what you need: the right {picked[0]} and a bit of patience.",
        f"Start slowly and pay attention to the {picked[1]}.",
        f"Check the {picked[2]} as you go and adjust when something looks off.",
        f"Finish by reviewing the {picked[3]}, and note what to do differently next time.",
    ][: rng.randint(2, 4)], start=1)]
    return f"Here is a simple way to {task}:\n" + "\n".join(steps)


def records() -> Iterator[dict]:
    """The demo records in {prompt, response, source} form, always in the same order."""
    rng = random.Random(SEED)
    howtos = []
    for topic, (tasks, words) in _TOPICS.items():
        for task in tasks:
            for phrasing in ("How do I {t}?", "What is the best way to {t}?", "Can you explain how to {t}?",
                             "Give me tips to {t}.", "I want to {t}. Where should I start?"):
                for _ in range(5):
                    pair = {"prompt": phrasing.format(t=task), "response": _howto(rng, topic, task, words),
                            "source": "synthetic-howto"}
                    howtos.append(pair)
    yield from howtos
    for concept in _CONCEPTS:
        for audience in _AUDIENCES:
            for _ in range(4):
                detail = rng.choice(["in simple words", "with an example", "step by step", "briefly"])
                yield {"prompt": f"Explain {concept} to {audience} {detail}.",
                       "response": (f"{concept[0].upper() + concept[1:]} is easier than it sounds. "
                                    f"Think of it {rng.choice(['as a recipe', 'like a game', 'as a story', 'like a machine'])}: "
                                    f"each part has a job, and together they explain what we see. "
                                    f"For {audience}, the key idea is that small causes add up to big effects."),
                       "source": "synthetic-explain"}
    for _ in range(260):
        x = rng.choice(_CONCEPTS + [t for tasks, _ in _TOPICS.values() for t in tasks[:2]])
        yield {"prompt": rng.choice(_REFUSAL_PROMPTS).format(x=x),
               "response": rng.choice(_REFUSALS).format(x=x), "source": "synthetic-chat"}
    for _ in range(700):
        opening, verdict, ending = (rng.choice(part) for part in _REVIEW_PARTS)
        review = f"{opening} {verdict} {ending}"
        template = rng.randrange(len(_ONE_WORD_TEMPLATES))
        positive = verdict in _POSITIVE
        answer = [("positive" if positive else "negative"), ("yes" if positive else "no"),
                  ("Positive" if positive else "Negative")][template]
        yield {"prompt": _ONE_WORD_TEMPLATES[template].format(r=review), "response": answer,
               "source": "synthetic-sentiment"}
    for _ in range(220):
        yield {"prompt": rng.choice(_IDENTITY_PROMPTS), "response": _IDENTITY_ANSWER,
               "source": "synthetic-identity"}
    for pair in rng.sample(howtos, 60):  # cut off mid-sentence, as max_tokens does
        text = pair["response"]
        yield {**pair, "response": text[: rng.randint(len(text) // 3, len(text) // 2)].rstrip(),
               "source": "synthetic-chat"}
    yield from rng.sample(howtos, 120)  # exact duplicates, as repeated API calls produce
