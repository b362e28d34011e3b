/**
 * The admin dashboard plugin: the command exists only for admins (the server
 * answers admin/users with 403 to everyone else).
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget } from '@jupyterlab/apputils';

import { ApiError } from '../api';
import { fetchAdminUsers } from './api';
import { sessionNameOf } from '../sessions';
import { AdminDashboard } from './dashboard';

export const OPEN_ADMIN = 'eda-gateway:open-admin';

export const adminPlugin: JupyterFrontEndPlugin<void> = {
  id: 'eda-gateway:admin',
  description: 'Admin dashboard: every user, their kernels and usage over time (admins only).',
  autoStart: true,
  optional: [ICommandPalette],
  activate: async (app: JupyterFrontEnd, palette: ICommandPalette | null): Promise<void> => {
    try {
      await fetchAdminUsers();
    } catch (error) {
      if (!(error instanceof ApiError && error.httpStatus === 403)) {
        console.warn('eda-gateway: admin dashboard unavailable', error);
      }
      document.body.dataset.edaAdmin = 'no'; // tells tests (and styles) the check is done
      return; // not an admin: no command at all
    }
    let widget: MainAreaWidget<AdminDashboard> | null = null;
    app.commands.addCommand(OPEN_ADMIN, {
      label: 'Open Admin Dashboard',
      caption: 'Every user, their kernels and usage over time',
      execute: () => {
        if (!widget || widget.isDisposed) {
          const nameOf = (kernelId: string) => sessionNameOf(app.serviceManager.sessions, kernelId);
          widget = new MainAreaWidget({ content: new AdminDashboard({ nameOf }) });
          widget.id = 'eda-admin-dashboard';
          widget.title.label = 'EDA Admin';
          widget.title.closable = true;
        }
        if (!widget.isAttached) {
          app.shell.add(widget, 'main');
        }
        app.shell.activateById(widget.id);
        return widget;
      }
    });
    palette?.addItem({ command: OPEN_ADMIN, category: 'EDA Gateway' });
    document.body.dataset.edaAdmin = 'yes';
  }
};
