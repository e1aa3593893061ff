"""Refusals in real AlpacaEval model outputs, labelled by reading (alpaca_eval_results/MODEL,
0-based record index): the refusal rules' test set (tests/test_signals.py) and the concept's
(tests/test_concepts.py)."""

REFUSALS = {
    "guanaco-7b": [3, 82, 122, 143, 147, 148, 161, 188, 207, 218, 228, 243, 291, 311, 336, 403, 408, 494, 547, 568,
                   574, 580, 587, 658, 664, 697, 701, 713],
    "falcon-7b-instruct": [10, 51, 56, 178, 207, 258, 285, 294, 296, 339, 352, 411, 430, 435, 532, 541, 691],
    "gpt4": [10, 128, 207, 254, 263, 266, 291, 294, 296, 326, 340, 352, 378, 379, 415, 458, 590, 606, 618, 720, 763],
    "llama-2-7b-chat-hf": [46, 62, 143, 178, 207, 220, 230, 246, 249, 250, 258, 260, 267, 291, 296, 327, 337, 340,
                           398, 426, 453],
    "vicuna-7b": [147, 294],
}
# Hard negatives: sympathy, "cannot" in an answer, apologies in role play, song lyrics,
# answers about language models, corrections that start "I'm sorry, but".
NOT_REFUSALS = {
    "guanaco-7b": [44, 127, 229, 280, 285, 302, 303, 307, 309, 422, 521, 626, 628, 629, 648, 799],
    "falcon-7b-instruct": [127, 132, 206, 303, 316, 357, 364, 412, 628, 629, 631, 676, 747, 780, 799],
    "gpt4": [127, 132, 142, 198, 292, 303, 364, 372, 455, 505, 524, 539, 629, 747, 799],
    "llama-2-7b-chat-hf": [53, 801],
    "vicuna-7b": [132, 285, 371, 423, 629, 799],
    "baize-v2-7b": [127, 132, 364, 442, 572, 628, 629],
    "text_davinci_003": [219],
}
