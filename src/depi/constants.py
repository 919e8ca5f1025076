"""Batch and file keys, typed once.

LeRobot-format keys (``observation.state``, ``action``, ...) follow the LeRobot dataset format; canonical-sample
keys (``image``, ``image_mask``, ``state``, ``actions``, ...) follow openpi's model inputs and are what the
mixture hands to the transforms and the policy (see docs/architecture.md).
"""

# --- LeRobot dataset columns -------------------------------------------------------------------------------
OBS_STATE = "observation.state"
OBS_IMAGES_PREFIX = "observation.images."
ACTION = "action"
TIMESTAMP = "timestamp"
FRAME_INDEX = "frame_index"
EPISODE_INDEX = "episode_index"
INDEX = "index"
TASK_INDEX = "task_index"
TASK = "task"
# Columns every LeRobot dataset carries besides its features of interest.
DEFAULT_COLUMNS = (TIMESTAMP, FRAME_INDEX, EPISODE_INDEX, INDEX, TASK_INDEX)
# Suffix LeRobot appends to a key with delta_timestamps for the padding mask, e.g. ``action_is_pad``.
IS_PAD_SUFFIX = "_is_pad"

# --- LeRobot meta layout -------------------------------------------------------------------------------------
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_JSONL_PATH = "meta/tasks.jsonl"  # v2.x
EPISODES_JSONL_PATH = "meta/episodes.jsonl"  # v2.x
EPISODES_STATS_JSONL_PATH = "meta/episodes_stats.jsonl"  # v2.1
TASKS_PARQUET_PATH = "meta/tasks.parquet"  # v3.0
EPISODES_DIR = "meta/episodes"  # v3.0
CODEBASE_VERSIONS = ("v2.0", "v2.1", "v3.0")

# --- Canonical sample (mixture -> transforms -> policy) ------------------------------------------------------
IMAGE = "image"
IMAGE_MASK = "image_mask"
STATE = "state"
ACTIONS = "actions"
ACTION_DIM_MASK = "action_dim_mask"
ACTION_IS_PAD = "action_is_pad"
PROMPT = "prompt"
EMBODIMENT = "embodiment"
DATASET_INDEX = "dataset_index"
# Camera slots by role (openpi / pi0 order).
BASE_CAMERA = "base_0_rgb"
LEFT_WRIST_CAMERA = "left_wrist_0_rgb"
RIGHT_WRIST_CAMERA = "right_wrist_0_rgb"
CAMERA_SLOTS = (BASE_CAMERA, LEFT_WRIST_CAMERA, RIGHT_WRIST_CAMERA)
# Model-side tokenized prompt keys.
TOKENIZED_PROMPT = "tokenized_prompt"
TOKENIZED_PROMPT_MASK = "tokenized_prompt_mask"

# --- Sizes -----------------------------------------------------------------------------------------------------
MAX_STATE_DIM = 32
MAX_ACTION_DIM = 32
IMAGE_RESOLUTION = (224, 224)

# --- Simulation (appended) -------------------------------------------------------------------------------------
# LeRobot's key for privileged simulator state (object / goal poses), e.g. in lerobot's pusht and metaworld data.
OBS_ENV_STATE = "observation.environment_state"
