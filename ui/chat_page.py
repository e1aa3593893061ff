"""Chat page: a GGUF model (and a LoRA adapter) and, beside it, a second one on the same prompts,
the tuned model against its base; answers streamed side by side, sampling on sliders.

Models are found beside the database and under ./runs; any other GGUF can be typed as a path.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from curator import chat, llm_server
from curator.errors import UserError
from ui import state

NONE = "(none)"


@st.cache_data(ttl=30, show_spinner=False)  # a file that `curator quantize` just wrote shows up soon
def _found(folders: tuple[str, ...]) -> dict[str, list[str]]:
    """GGUF files by kind, the newest first."""
    return {
        kind: [str(p) for p in sorted(paths, key=lambda p: -p.stat().st_mtime)]
        for kind, paths in chat.find_gguf(folders).items()
    }


# One server per (model, adapter), shared by every browser tab; two slots, so two tabs (or a
# tab and an abandoned stream still closing) do not wait for each other.
@st.cache_resource(max_entries=4, show_spinner="Loading the model…", on_release=lambda m: m.close())
def _chat_model(model: str, lora: str | None) -> chat.ChatModel:
    return chat.ChatModel(model, lora, n_parallel=2)


def _side_by_side(replies):
    """(index, piece) from each reply in turn: the servers generate at once, both shown as they go."""
    pending = dict(enumerate(map(iter, replies)))
    while pending:
        for i, pieces in list(pending.items()):
            piece = next(pieces, None)
            if piece is None:
                del pending[i]
            else:
                yield i, piece


folder = Path(state.db_path()).resolve().parent
found = _found(tuple(sorted({str(f) for f in (folder, Path("runs").resolve()) if f.is_dir()})))
base = str(llm_server.bundled_model().resolve())
models = [base, *(m for m in found["model"] if m != base)]
adapters = [NONE, *found["adapter"]]


def _name(path: str) -> str:
    if path == base:
        return f"{llm_server.BUNDLED_MODEL_NAME} (bundled base)"
    return str(Path(path).relative_to(folder)) if Path(path).is_relative_to(folder) else path


def _pick(column, key: str, default: str) -> tuple[str, str | None]:
    """A model and an adapter chosen in `column`; paths not listed can be typed in."""
    model = column.selectbox(
        "Model", models, index=models.index(default), format_func=_name, key=f"{key}-model", accept_new_options=True
    )
    lora = column.selectbox(
        "Adapter",
        adapters,
        format_func=lambda a: a if a == NONE else _name(a),
        key=f"{key}-lora",
        accept_new_options=True,
    )
    return model, None if lora == NONE else lora


left, right = st.columns(2)
newest = models[1] if len(models) > 1 else base  # a tuned file, when there is one, beside the base
choices = [_pick(left, "a", newest)]
if right.toggle("Compare with a second model", value=newest != base):
    choices.append(_pick(right, "b", base))
system = st.text_input("System prompt", help="Empty: the model's own default, if its template has one.")
with st.expander("Sampling"):
    default = chat.Sampling()
    c1, c2, c3, c4, c5 = st.columns(5)
    sampling = chat.Sampling(
        temperature=c1.slider("Temperature", 0.0, 2.0, default.temperature, 0.05, help="0: greedy, repeatable"),
        top_p=c2.slider("Top p", 0.0, 1.0, default.top_p, 0.01),
        top_k=c3.slider("Top k", 0, 100, default.top_k, help="0: no limit"),
        repeat_penalty=c4.slider("Repeat penalty", 1.0, 2.0, default.repeat_penalty, 0.05),
        max_tokens=c5.slider("Max tokens", 16, 2048, default.max_tokens, 16),
    )

for model, lora in choices:
    for path in filter(None, (model, lora)):
        if not Path(path).is_file():
            st.error(f"no file at {path}")
            st.stop()
try:
    chat_models = [_chat_model(model, lora) for model, lora in choices]
except UserError as err:  # not a GGUF model, or an adapter made for another model
    st.error(str(err))
    st.stop()

# The conversation belongs to these models and this system prompt: changing either starts anew.
signature = (tuple(choices), system)
new_conversation = st.button("New conversation")
if st.session_state.get("chat_signature") != signature or new_conversation:
    st.session_state["chat_signature"] = signature
    st.session_state["chat_history"] = []
history: list[tuple[str, list[str]]] = st.session_state["chat_history"]

columns = st.columns(len(chat_models))
for column, chat_model in zip(columns, chat_models):
    column.subheader(chat_model.label)
for prompt, answers in history:
    for column, answer in zip(columns, answers):
        column.chat_message("user").markdown(prompt)
        column.chat_message("assistant").markdown(answer)

prompt = st.chat_input("Ask " + ("both models" if len(chat_models) > 1 else "the model"))
if prompt:
    replies, shown = [], []
    for i, (column, chat_model) in enumerate(zip(columns, chat_models)):
        column.chat_message("user").markdown(prompt)
        shown.append(column.chat_message("assistant").empty())
        conversation = chat.Conversation(system or None, [(p, answers[i]) for p, answers in history])
        replies.append(chat_model.reply(conversation, prompt, sampling))
    for i, _piece in _side_by_side(replies):
        shown[i].markdown(replies[i].text + "▌")
    for column, place, reply in zip(columns, shown, replies):
        place.markdown(reply.text)
        column.caption(f"{reply.tokens} tokens, {reply.tokens_per_s:.1f} tokens/s")
    history.append((prompt, [reply.text for reply in replies]))
