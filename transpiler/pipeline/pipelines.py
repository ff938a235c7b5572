"""The pipelines, as data: which passes run, in which order, for each kind of conversion.

Every pass takes ``(ir, ctx)`` and returns a PassLog (passes/base.py); one
that does not apply to the target says so itself (``Pass.applies``). After
the passes, validation against the target's opset is the fixed last stage.
"""

from transpiler.passes.checkpoint_names import CheckpointNames
from transpiler.passes.clear_devices import ClearDevices
from transpiler.passes.dense_optionals import DenseOptionals
from transpiler.passes.dense_tensor_lists import DenseTensorLists
from transpiler.passes.inline_calls import InlineCalls
from transpiler.passes.lower_control_flow import LowerControlFlow
from transpiler.passes.object_graph_schema import ObjectGraphSchema
from transpiler.passes.prune import PruneToSignatures
from transpiler.passes.prune_functions import PruneFunctions
from transpiler.passes.rules import Rules
from transpiler.passes.save_only_ops import SaveOnlyOps
from transpiler.passes.signatures import FindSignatures
from transpiler.passes.tf1_variables import RecordVariables
from transpiler.passes.unfreeze import Unfreeze

#: Any model for an older (or the same) release, and TF 2 SavedModels for any 2.x target:
#: the graphs are rewritten in place and written back by backends/writer.py.
DOWNGRADE = [
    ClearDevices,      # --clear-devices (else a note on GPU-pinned nodes)
    PruneFunctions,    # functions only the object graph names (TF 1.x targets never read it)
    SaveOnlyOps,       # DisableCopyOnRead -> NoOp where the target lacks it
    InlineCalls,       # StatefulPartitionedCall & co, when the target needs them gone
    LowerControlFlow,  # If/Case/While -> Switch/Merge/Enter/Exit frames
    DenseTensorLists,  # TensorList ops -> dense tensors
    DenseOptionals,    # cond_v2's Optionals (gradient intermediates) -> the tensors they wrap
    CheckpointNames,   # object-based checkpoint keys -> TF 1.x variable names (TF 1.x targets)
    Rules,             # rules/*.yaml and --rules files, to a fixpoint
    ObjectGraphSchema,  # object-graph values a 2.x target's protos cannot read (tensor defaults)
]

#: A TF 1.x graph for a 2.x target: one meta graph, cut to its signatures, then written as a
#: native TF 2 SavedModel by backends/tf2_native.py.
UPGRADE = [
    ClearDevices,
    FindSignatures,     # the meta graph's signatures, or one from --inputs/--outputs
    RecordVariables,    # checkpoint keys and initial values, before pruning drops the saver
    PruneToSignatures,  # only what the signatures compute
    Unfreeze,           # --unfreeze: weight constants become variables again
    SaveOnlyOps,
    InlineCalls,
    LowerControlFlow,
    DenseTensorLists,
    Rules,
]
