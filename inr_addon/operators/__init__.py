"""The add-on's operators, one a file."""

from .cancel import INR_OT_cancel
from .check_worker import INR_OT_check_worker
from .combine import INR_OT_combine
from .extract_mesh import INR_OT_extract_mesh
from .fit_image import INR_OT_fit_image
from .fit_mesh import INR_OT_fit_mesh
from .import_field import INR_OT_import_field
from .morph import INR_OT_morph
from .offset import INR_OT_offset
from .resample_image import INR_OT_resample_image
from .worker_remove import INR_OT_worker_remove
from .worker_setup import INR_OT_worker_setup
from .worker_setup_cancel import INR_OT_worker_setup_cancel

classes = (
    INR_OT_fit_mesh,
    INR_OT_extract_mesh,
    INR_OT_import_field,
    INR_OT_cancel,
    INR_OT_check_worker,
    INR_OT_worker_setup,
    INR_OT_worker_setup_cancel,
    INR_OT_worker_remove,
    INR_OT_combine,
    INR_OT_offset,
    INR_OT_morph,
    INR_OT_fit_image,
    INR_OT_resample_image,
)
